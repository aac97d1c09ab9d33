package dispatch

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Supported says why this kernel cannot run programs under a dispatcher,
// nil if it can: it loads a one-slot dispatcher and links a two-instruction
// extension into it (nothing is attached to an interface). libxdp makes
// the same check and, failing it, loads programs alone.
func Supported() error {
	spec, err := loadDispatcher()
	if err != nil {
		return err
	}
	if err := spec.Variables["conf"].Set(dispatcherXdpDispatcherConfig{Magic: Magic, DispatcherVersion: Version, NumProgsEnabled: 1}); err != nil {
		return err
	}
	var objs dispatcherObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return fmt.Errorf("the kernel refuses the dispatcher program: %w", err)
	}
	defer objs.Close()
	ext, err := ebpf.NewProgram(passExtension(objs.XdpDispatcher, "prog0"))
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("the kernel refuses freplace (BPF_PROG_TYPE_EXT) programs even to root (kernel lockdown or a BPF LSM forbids them): %w", err)
		}
		return fmt.Errorf("the kernel refuses freplace (BPF_PROG_TYPE_EXT) programs (5.7+ with BTF needed): %w", err)
	}
	defer ext.Close()
	l, err := link.AttachFreplace(objs.XdpDispatcher, "prog0", ext)
	if err != nil {
		return fmt.Errorf("the kernel cannot link an freplace program into a dispatcher (5.10+ needed): %w", err)
	}
	return l.Close()
}

// passExtension is an extension of fn in target that returns XDP_PASS,
// with the BTF an extension needs: int fn(struct xdp_md *ctx).
func passExtension(target *ebpf.Program, fn string) *ebpf.ProgramSpec {
	proto := &btf.FuncProto{
		Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: &btf.Struct{Name: "xdp_md"}}}},
	}
	insns := asm.Instructions{
		btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, 2).WithSymbol("xdpcache_probe"), &btf.Func{Name: "xdpcache_probe", Type: proto, Linkage: btf.GlobalFunc}),
		asm.Return(),
	}
	return &ebpf.ProgramSpec{Name: "xdpcache_probe", Type: ebpf.Extension, Instructions: insns, License: "GPL", AttachTarget: target, AttachTo: fn}
}

// ChecksPacketChanges reports whether this kernel refuses an extension
// that changes packet data (bpf_xdp_adjust_tail: xdpcache does) in place
// of a function that does not (6.13's check for extensions, backported to
// some older series). libxdp's dispatcher slots before 1.5.5 do not, so on
// such a kernel those libxdp versions cannot link xdpcache into a
// dispatcher they rebuild; this package's slots do, and are unaffected.
func ChecksPacketChanges() (bool, error) {
	if err := Supported(); err != nil {
		return false, err
	}
	proto := &btf.FuncProto{
		Return: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Params: []btf.FuncParam{{Name: "ctx", Type: &btf.Pointer{Target: &btf.Struct{Name: "xdp_md"}}}},
	}
	fn := func(name string) *btf.Func { return &btf.Func{Name: name, Type: proto, Linkage: btf.GlobalFunc} }
	// an XDP program whose global function "slot" leaves packet data alone
	target, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdpcache_chk", Type: ebpf.XDP, License: "GPL", Instructions: asm.Instructions{
		btf.WithFuncMetadata(asm.Call.Label("slot").WithSymbol("xdpcache_chk"), fn("xdpcache_chk")),
		asm.Return(),
		btf.WithFuncMetadata(asm.Mov.Imm(asm.R0, 2).WithSymbol("slot"), fn("slot")),
		asm.Return(),
	}})
	if err != nil {
		return false, fmt.Errorf("load the check's target program: %w", err)
	}
	defer target.Close()
	// an extension of it that moves the packet's tail (by 0 bytes)
	ext, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "xdpcache_chk_x", Type: ebpf.Extension, License: "GPL",
		AttachTarget: target, AttachTo: "slot", Instructions: asm.Instructions{
			btf.WithFuncMetadata(asm.Mov.Imm(asm.R2, 0).WithSymbol("xdpcache_chk_x"), fn("xdpcache_chk_x")),
			asm.FnXdpAdjustTail.Call(),
			asm.Mov.Imm(asm.R0, 2),
			asm.Return(),
		}})
	if err == nil {
		ext.Close()
		return false, nil
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && strings.Contains(strings.Join(ve.Log, "\n"), "changes packet data") {
		return true, nil
	}
	return false, fmt.Errorf("load the check's extension: %w", err)
}
