// Package dispatchtest holds a program for testing how xdpcache shares an
// interface: c/counter.c counts packets (all, UDP to memcached's port 11211,
// other UDP) in its one array map and returns XDP_PASS, with libxdp's run
// configuration (priority 10, chain on XDP_PASS) in its BTF. Tests load
// counter_bpfel.o with xdp-loader, as an operator loads a filter.
package dispatchtest
