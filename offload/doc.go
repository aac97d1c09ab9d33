// Package offload is only the parent of the packages that put xdpcache on
// an interface and keep it there; it holds no code. Each subpackage has one
// job, and imports only the ones listed before it:
//
//   - mode: the XDP mode type and its parser
//   - listeners: memcached's listening sockets and the processes holding them
//   - netdev: what the kernel says about a device, device maps, netlink attach
//   - dispatch: libxdp's multi-program dispatcher: inspect, join, leave
//   - record: deployment records, the pin root, opening a pinned deployment
//   - probe: a report of the facts, the pre-flight checks, the mode plan, the
//     paths writes can take
//   - deploy: plan then execute (on several interfaces), undeploy, status, flush
//   - relay: the offload flavor's relay and the memcached restart watch
package offload
