package dispatchtest

// The counting program's object; the generated counter_bpfel.go/.o are
// committed. xdp-loader loads counter_bpfel.o itself (CounterObject).
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" counter c/counter.c -- -I/usr/include/x86_64-linux-gnu
