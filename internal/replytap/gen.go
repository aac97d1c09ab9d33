package replytap

// reply_tap.c includes the cache's packet parser and counter headers from
// bpf/c/include/common (as "include/common/..."), hence -I../../bpf/c.
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type tap_cfg replytap c/reply_tap.c -- -I/usr/include/x86_64-linux-gnu -I../../bpf/c
