#!/usr/bin/env bash
# Builds the pinned test and build tools of hack/tools into .tools/bin.
#
# Every tool is built from a Go module pinned in hack/tools/go.mod (or a sub-module of it), never
# downloaded as a release binary. A tool is rebuilt only when the inputs that pin it change: each
# binary has a stamp file holding the hash of those inputs, so a second run is a no-op.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
stamps="$root/.tools/stamps"
mkdir -p "$bin" "$stamps"

# name|module dir (relative to hack/tools)|package
tools=(
  "kube-apiserver|.|k8s.io/kubernetes/cmd/kube-apiserver"
  "kubectl|.|k8s.io/kubernetes/cmd/kubectl"
  "etcd|.|./cmd/etcd"
  "controller-gen|.|sigs.k8s.io/controller-tools/cmd/controller-gen"
  "staticcheck|.|honnef.co/go/tools/cmd/staticcheck"
  "helm|helm|helm.sh/helm/v3/cmd/helm"
  "macvlan|.|github.com/containernetworking/plugins/plugins/main/macvlan"
  "ipvlan|.|github.com/containernetworking/plugins/plugins/main/ipvlan"
  "bridge|.|github.com/containernetworking/plugins/plugins/main/bridge"
  "ptp|.|github.com/containernetworking/plugins/plugins/main/ptp"
  "vlan|.|github.com/containernetworking/plugins/plugins/main/vlan"
  "host-local|.|github.com/containernetworking/plugins/plugins/ipam/host-local"
  "static|.|github.com/containernetworking/plugins/plugins/ipam/static"
  "tuning|.|github.com/containernetworking/plugins/plugins/meta/tuning"
  "whereabouts|whereabouts|github.com/k8snetworkplumbingwg/whereabouts/cmd"
  "multus|multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus"
)

only=("$@") # optional subset of tool names
want() {
  [[ ${#only[@]} -eq 0 ]] && return 0
  local t
  for t in "${only[@]}"; do [[ $t == "$1" ]] && return 0; done
  return 1
}

inputs_hash() {
  local dir="$root/hack/tools/$1"
  # The module files pin every version; the local etcd main is the only source of ours built here.
  cat "$dir/go.mod" "$dir/go.sum" "$root/hack/tools/cmd/etcd/main.go" <(go env GOVERSION) | sha256sum | cut -c1-16
}

total=0
for t in "${tools[@]}"; do want "${t%%|*}" && total=$((total + 1)); done
n=0
start_all=$SECONDS
for t in "${tools[@]}"; do
  IFS='|' read -r name dir pkg <<<"$t"
  want "$name" || continue
  n=$((n + 1))
  hash=$(inputs_hash "$dir")
  if [[ -x "$bin/$name" && -f "$stamps/$name" && $(cat "$stamps/$name") == "$hash" ]]; then
    printf '[%d/%d] %-15s up to date\n' "$n" "$total" "$name"
    continue
  fi
  printf '[%d/%d] %-15s building %s ...\n' "$n" "$total" "$name" "$pkg"
  t0=$SECONDS
  (cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$hash" >"$stamps/$name"
  printf '[%d/%d] %-15s built in %ds\n' "$n" "$total" "$name" $((SECONDS - t0))
done
# The IPAM benchmark installs Whereabouts' own CRDs, taken from the pinned module.
if want whereabouts; then
  crds="$root/.tools/crds/whereabouts"
  src=$(cd "$root/hack/tools/whereabouts" && go list -m -f '{{.Dir}}' github.com/k8snetworkplumbingwg/whereabouts)/doc/crds
  mkdir -p "$crds"
  for f in whereabouts.cni.cncf.io_ippools.yaml whereabouts.cni.cncf.io_overlappingrangeipreservations.yaml; do
    cmp -s "$src/$f" "$crds/$f" || install -m 0644 "$src/$f" "$crds/$f"
  done
fi
printf 'tools: %d checked in %ds, binaries in %s\n' "$total" $((SECONDS - start_all)) "$bin"
