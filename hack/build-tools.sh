#!/usr/bin/env bash
# Builds the pinned test and build tools of hack/tools into .tools/bin.
#
# Every tool is built from a Go module pinned in hack/tools/go.mod (or a sub-module of it), never
# downloaded as a release binary. A tool is rebuilt only when the inputs that pin it change: each
# binary has a stamp file holding the hash of those inputs (module files, Go version, tags and
# version flags), so a second run is a no-op.
#
# Usage: hack/build-tools.sh [tool|group ...]   (no argument: every tool)
# Groups: @cluster (what the sandbox's real cluster runs), @lint, @bench.
# TOOLS_JOBS (default 2) builds that many tools at once; each build itself uses every core.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.tools/bin"
stamps="$root/.tools/stamps"
logs="$root/.tools/logs"
mkdir -p "$bin" "$stamps" "$logs"

# name|module dir (relative to hack/tools)|package|profile
# Profiles: k8s (Kubernetes version stamped), containerd, containerd-shim, plain.
tools=(
  "kube-apiserver|.|k8s.io/kubernetes/cmd/kube-apiserver|k8s"
  "kube-controller-manager|.|k8s.io/kubernetes/cmd/kube-controller-manager|k8s"
  "kube-scheduler|.|k8s.io/kubernetes/cmd/kube-scheduler|k8s"
  "kubelet|.|k8s.io/kubernetes/cmd/kubelet|k8s"
  "kube-proxy|.|k8s.io/kubernetes/cmd/kube-proxy|k8s"
  "kubectl|.|k8s.io/kubernetes/cmd/kubectl|k8s"
  "etcd|.|./cmd/etcd|plain"
  "containerd|containerd|github.com/containerd/containerd/v2/cmd/containerd|containerd"
  "containerd-shim-runc-v2|containerd|github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2|containerd-shim"
  "controller-gen|.|sigs.k8s.io/controller-tools/cmd/controller-gen|plain"
  "staticcheck|.|honnef.co/go/tools/cmd/staticcheck|plain"
  "helm|helm|helm.sh/helm/v3/cmd/helm|plain"
  "macvlan|.|github.com/containernetworking/plugins/plugins/main/macvlan|plain"
  "ipvlan|.|github.com/containernetworking/plugins/plugins/main/ipvlan|plain"
  "bridge|.|github.com/containernetworking/plugins/plugins/main/bridge|plain"
  "ptp|.|github.com/containernetworking/plugins/plugins/main/ptp|plain"
  "vlan|.|github.com/containernetworking/plugins/plugins/main/vlan|plain"
  "loopback|.|github.com/containernetworking/plugins/plugins/main/loopback|plain"
  "host-local|.|github.com/containernetworking/plugins/plugins/ipam/host-local|plain"
  "static|.|github.com/containernetworking/plugins/plugins/ipam/static|plain"
  "tuning|.|github.com/containernetworking/plugins/plugins/meta/tuning|plain"
  "portmap|.|github.com/containernetworking/plugins/plugins/meta/portmap|plain"
  "whereabouts|whereabouts|github.com/k8snetworkplumbingwg/whereabouts/cmd|plain"
  "multus|multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus|multus"
  "install_multus|multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/install_multus|multus"
  "thin_entrypoint|multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/thin_entrypoint|multus"
  "passthru|multus|gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/passthru-cni|multus"
)

groups_cluster="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd containerd containerd-shim-runc-v2 helm macvlan ipvlan bridge ptp vlan loopback host-local static tuning portmap multus install_multus thin_entrypoint passthru"
groups_lint="staticcheck helm controller-gen"
groups_bench="kube-apiserver etcd whereabouts"

only=()
for a in "$@"; do
  case $a in
  @cluster) read -ra g <<<"$groups_cluster"; only+=("${g[@]}") ;;
  @lint) read -ra g <<<"$groups_lint"; only+=("${g[@]}") ;;
  @bench) read -ra g <<<"$groups_bench"; only+=("${g[@]}") ;;
  *) only+=("$a") ;;
  esac
done
want() {
  [[ ${#only[@]} -eq 0 ]] && return 0
  local t
  for t in "${only[@]}"; do [[ $t == "$1" ]] && return 0; done
  return 1
}

# module_version DIR MODULE prints the pinned version of MODULE in the module at DIR.
module_version() { (cd "$root/hack/tools/$1" && go list -m -f '{{.Version}}' "$2"); }
module_time() { (cd "$root/hack/tools/$1" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$2"); }

# build_flags PROFILE DIR prints "tags|ldflags" for a profile: the Kubernetes components and
# containerd carry their real version strings (kubectl version, Helm's kubeVersion check and the
# node's containerRuntimeVersion read them).
build_flags() {
  local profile=$1 dir=$2 v t major minor
  case $profile in
  k8s)
    v=$(module_version "$dir" k8s.io/kubernetes)
    t=$(module_time "$dir" k8s.io/kubernetes)
    major=${v#v}; major=${major%%.*}
    minor=${v#v"$major".}; minor=${minor%%.*}
    local ld=""
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$v -X $p.gitMajor=$major -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$t"
    done
    echo "|-s -w$ld"
    ;;
  containerd | containerd-shim)
    v=$(module_version "$dir" github.com/containerd/containerd/v2)
    local tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs osusergo netgo static_build"
    [[ $profile == containerd-shim ]] && tags+=" no_grpc"
    echo "$tags|-s -w -X github.com/containerd/containerd/v2/version.Version=$v -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
    ;;
  multus)
    v=$(module_version "$dir" gopkg.in/k8snetworkplumbingwg/multus-cni.v4)
    echo "|-s -w -X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=$v"
    ;;
  *) echo "|-s -w" ;;
  esac
}

inputs_hash() {
  local dir="$root/hack/tools/$1"
  # The module files pin every version; the local etcd main is the only source of ours built here.
  cat "$dir/go.mod" "$dir/go.sum" "$root/hack/tools/cmd/etcd/main.go" <(go env GOVERSION) <(echo "$2") | sha256sum | cut -c1-16
}

jobs=${TOOLS_JOBS:-2}
todo=()
total=0
for t in "${tools[@]}"; do want "${t%%|*}" && total=$((total + 1)); done
for a in "${only[@]}"; do
  found=0
  for t in "${tools[@]}"; do [[ ${t%%|*} == "$a" ]] && found=1; done
  [[ $found == 1 ]] || { echo "build-tools: unknown tool $a" >&2; exit 2; }
done

n=0
start_all=$SECONDS
for t in "${tools[@]}"; do
  IFS='|' read -r name dir pkg profile <<<"$t"
  want "$name" || continue
  n=$((n + 1))
  flags=$(build_flags "$profile" "$dir")
  hash=$(inputs_hash "$dir" "$flags")
  if [[ -x "$bin/$name" && -f "$stamps/$name" && $(cat "$stamps/$name") == "$hash" ]]; then
    printf '[%d/%d] %-24s up to date\n' "$n" "$total" "$name"
    continue
  fi
  todo+=("$name|$dir|$pkg|$flags|$hash")
done

build_one() {
  local name=$1 dir=$2 pkg=$3 tags=$4 ldflags=$5 hash=$6 t0=$SECONDS
  if (cd "$root/hack/tools/$dir" && CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg") >"$logs/$name.log" 2>&1; then
    mv "$bin/$name.tmp" "$bin/$name"
    echo "$hash" >"$stamps/$name"
    printf '        %-24s built in %ds\n' "$name" $((SECONDS - t0))
  else
    printf '        %-24s FAILED after %ds (log: %s)\n' "$name" $((SECONDS - t0)) "$logs/$name.log"
    tail -20 "$logs/$name.log"
    return 1
  fi
}

failed=0
running=0
i=0
for item in "${todo[@]}"; do
  i=$((i + 1))
  IFS='|' read -r name dir pkg tags ldflags hash <<<"$item"
  printf '[building %d/%d] %s (%s)\n' "$i" "${#todo[@]}" "$name" "$pkg"
  build_one "$name" "$dir" "$pkg" "$tags" "$ldflags" "$hash" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
[[ $failed == 0 ]] || { echo "build-tools: a build failed" >&2; exit 1; }

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
