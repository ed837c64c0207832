// Command coredns is CoreDNS with only the plugins the real test node's Corefile uses
// (tests/cluster/node.sh). Built by scripts/tools/build-coredns.sh.
package main

import (
	"github.com/coredns/coredns/coremain"

	// The plugins register themselves; CoreDNS' own directive order (core/dnsserver) applies.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func main() { coremain.Run() }
