package offload

// Mode is an XDP attach mode.
type Mode string

// The XDP modes, fastest first.
const (
	ModeOffload Mode = "offload" // on the NIC (SmartNIC)
	ModeNative  Mode = "native"  // in the driver
	ModeGeneric Mode = "generic" // on the skb, after the driver: slow, works everywhere
)
