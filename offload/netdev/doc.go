// Package netdev reads what the kernel says about network devices, and
// creates maps on devices that offload them: the XDP attachment of an
// interface per mode (RTM_GETLINK, also across network namespaces), the
// netdev family's XDP features, and offloaded maps with the objects' device
// (BPF_MAP_CREATE with map_ifindex, bpf_*_info.ifindex); SetXDP is the
// netlink attach with the kernel's explanation of a refusal. It decides nothing:
// probe turns these facts into checks and a plan.
package netdev
