// Package bpf holds xdpcache's BPF programs (C sources in c/) and the Go
// bindings bpf2go generates from them. The generated *_bpfel.go/*_bpfel.o
// files are committed so building xdpcache needs no clang.
package bpf

// One bpf2go command with the flags every object is built with; each line
// below adds the types it exports, the object's name and its C source.
//go:generate -command bpf2go go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3"
//go:generate bpf2go -type config -type item -type global_state -type ticket_key -type ticket -type allow_key4 -type allow_key6 -type allow_rule -type local_addr -type stat_id -type shadow_log -type shadow_miss -type reply_slot xdp c/xdp_cache.c -- -I/usr/include/x86_64-linux-gnu
//go:generate bpf2go tc c/tc_fill.c -- -I/usr/include/x86_64-linux-gnu
//go:generate bpf2go -type ocfg -type ostate -type ogen -type oentry -type ochunk_key -type ochunk -type oticket_key -type oticket -type ottl -type oallow_key xdpoff c/xdp_offload.c -- -I/usr/include/x86_64-linux-gnu
//go:generate bpf2go -type relay_cfg tcrelay c/tc_relay.c -- -I/usr/include/x86_64-linux-gnu
