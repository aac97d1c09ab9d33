package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// stackLimit is the verifier's limit on the stack of a whole call chain.
// Kernels such as Debian 12's 6.1 round every frame up to 32 bytes (a frame
// that uses none counts 32 too), which newer ones do not: a chain that loads
// here can fail there with "combined stack size of N calls is M. Too large".
const stackLimit = 512

// frameStacks returns each function's stack use (bytes below r10, as the
// verifier measures it: direct accesses and pointers r10+off handed on) and
// the functions it calls or hands to a helper (bpf_loop callbacks).
func frameStacks(insns asm.Instructions) (map[string]int, map[string][]string) {
	stack := map[string]int{}
	calls := map[string][]string{}
	fn := ""
	var fp [asm.R10 + 1]bool // registers holding r10 + something
	var fpOff [asm.R10 + 1]int64
	note := func(off int64) {
		if -off > int64(stack[fn]) {
			stack[fn] = int(-off)
		}
	}
	for _, ins := range insns {
		if s := ins.Symbol(); s != "" {
			fn = s
			fp = [asm.R10 + 1]bool{}
		}
		if ins.IsFunctionReference() {
			calls[fn] = append(calls[fn], ins.Reference())
		}
		op := ins.OpCode
		switch {
		case op.Class().IsLoad() && ins.Src == asm.R10:
			note(int64(ins.Offset))
		case op.Class().IsStore() && ins.Dst == asm.R10:
			note(int64(ins.Offset))
		case op.Class().IsLoad() && ins.Src <= asm.R9 && fp[ins.Src]:
			note(fpOff[ins.Src] + int64(ins.Offset))
		case op.Class().IsStore() && ins.Dst <= asm.R9 && fp[ins.Dst]:
			note(fpOff[ins.Dst] + int64(ins.Offset))
		}
		if op.Class().IsALU() && ins.Dst <= asm.R9 {
			switch {
			case op.ALUOp() == asm.Mov && op.Source() == asm.RegSource && ins.Src == asm.R10:
				fp[ins.Dst], fpOff[ins.Dst] = true, 0
			case op.ALUOp() == asm.Add && op.Source() == asm.ImmSource && fp[ins.Dst]:
				fpOff[ins.Dst] += ins.Constant
				note(fpOff[ins.Dst])
			default:
				fp[ins.Dst] = false
			}
		}
		if op.JumpOp() == asm.Call {
			for r := asm.R1; r <= asm.R5; r++ {
				fp[r] = false // clobbered by the call
			}
			fp[asm.R0] = false
		}
	}
	return stack, calls
}

// TestStackFitsOlderKernels: every call chain of every program stays within
// the verifier's stack limit with each frame rounded up to 32 bytes.
func TestStackFitsOlderKernels(t *testing.T) {
	for name, load := range map[string]func() (*ebpf.CollectionSpec, error){"xdp": loadXdp, "tc": loadTc, "xdpoff": loadXdpoff, "tcrelay": loadTcrelay} {
		spec, err := load()
		if err != nil {
			t.Fatal(err)
		}
		for pn, p := range spec.Programs {
			stack, calls := frameStacks(p.Instructions)
			frame := func(f string) int { return (max(stack[f], 1) + 31) / 32 * 32 }
			var deepest func(f string, seen map[string]bool) (int, []string)
			deepest = func(f string, seen map[string]bool) (int, []string) {
				best, path := 0, []string(nil)
				seen[f] = true
				for _, c := range calls[f] {
					if seen[c] {
						continue
					}
					d, p := deepest(c, seen)
					if d > best {
						best, path = d, p
					}
				}
				delete(seen, f)
				return frame(f) + best, append([]string{f}, path...)
			}
			d, path := deepest(pn, map[string]bool{})
			t.Logf("%s/%s: deepest chain %d bytes with 32-byte frames: %v", name, pn, d, path)
			if d > stackLimit {
				t.Errorf("%s/%s: a call chain needs %d bytes of stack with 32-byte frames (limit %d): %v", name, pn, d, stackLimit, path)
			}
		}
	}
}
