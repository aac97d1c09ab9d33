package xdpgen

//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type gen_cfg -type gen_key -type gen_state xdpgen c/req_gen.c -- -I/usr/include/x86_64-linux-gnu
