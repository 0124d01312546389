// Command etcd is the etcd server used by the test control plane. It is built from the pinned
// go.etcd.io/etcd/server/v3 module so that tests never need a downloaded release binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
