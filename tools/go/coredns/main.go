// Command coredns is CoreDNS v1.12.4 built with only the plugins a cluster DNS
// needs, the way CoreDNS documents custom builds: import coremain, dnsserver and
// the chosen plugins, and set dnsserver.Directives (the execution order, here the
// upstream order of core/dnsserver/zdirectives.go filtered to these plugins).
// The full build links every cloud backend (route53, azure, clouddns, etcd, ...)
// and compiles several times longer.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"

	// Linked anyway (imported by kubernetes and forward); listed so that what
	// `coredns -plugins` shows is also usable. prometheus is in kubeadm's Corefile.
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/dnstap"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/transfer"
)

func init() {
	dnsserver.Directives = []string{
		"metadata",
		"reload",
		"bind",
		"debug",
		"ready",
		"health",
		"prometheus",
		"errors",
		"log",
		"dnstap",
		"loadbalance",
		"cache",
		"transfer",
		"hosts",
		"kubernetes",
		"loop",
		"forward",
		"whoami",
	}
}

func main() {
	coremain.Run()
}
