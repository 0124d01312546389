package ipamtest

import (
	"github.com/spiderpool-go/spiderpool/api/v2beta1"
	"github.com/spiderpool-go/spiderpool/internal/testutil/build"
)

// PublicCloudPools are the four default pools of the public-cloud guide (docs/guides/public-cloud.md#3-hand-out-the-secondary-ips-spiderippools):
// one per node and NIC, told apart by nodeName and multusName. Each call returns new objects.
func PublicCloudPools() []*v2beta1.SpiderIPPool {
	return []*v2beta1.SpiderIPPool{
		build.Pool("master-172", "172.31.192.0/20", build.Default(), build.IPs("172.31.199.185-172.31.199.189"),
			build.Gateway("172.31.207.253"), build.NodeName("master"), build.MultusName("kube-system/ipvlan-eth0")),
		build.Pool("master-192", "192.168.0.0/24", build.Default(), build.IPs("192.168.0.156-192.168.0.160"),
			build.Gateway("192.168.0.253"), build.NodeName("master"), build.MultusName("kube-system/ipvlan-eth1")),
		build.Pool("worker-172", "172.31.192.0/20", build.Default(), build.IPs("172.31.199.190-172.31.199.194"),
			build.Gateway("172.31.207.253"), build.NodeName("worker"), build.MultusName("kube-system/ipvlan-eth0")),
		build.Pool("worker-192", "192.168.0.0/24", build.Default(), build.IPs("192.168.0.161-192.168.0.165"),
			build.Gateway("192.168.0.253"), build.NodeName("worker"), build.MultusName("kube-system/ipvlan-eth1")),
	}
}
