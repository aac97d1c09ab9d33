package dispatch

// The dispatcher's object; the generated dispatcher_bpfel.go/.o are
// committed (building xdpcache needs no clang).
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -mcpu=v3" dispatcher c/dispatcher.c -- -I/usr/include/x86_64-linux-gnu
