// Package deploy puts xdpcache on an interface and takes it off again. Deploy
// works out a plan — the steps, from the probe's mode plan and what is
// attached already — and then runs it; --dry-run prints the same steps
// instead. Both flavors (host, and offload onto a SmartNIC) go through one
// attach path over bpf.Flavor. It also holds the interface lock, Undeploy,
// Status and Flush.
package deploy
