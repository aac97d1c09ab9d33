package bpf

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// What a NIC that runs XDP in hardware (NFP; the kernel's offload API, which
// netdevsim emulates) accepts: see c/include/offload/offload.h. netdevsim accepts
// any instruction, so this static check is what keeps the offload object
// within what real hardware takes.
var offloadHelpers = map[asm.BuiltinFunc]bool{
	asm.FnMapLookupElem:   true,
	asm.FnMapUpdateElem:   true,
	asm.FnMapDeleteElem:   true,
	asm.FnXdpAdjustHead:   true,
	asm.FnXdpAdjustTail:   true,
	asm.FnGetPrandomU32:   true,
	asm.FnPerfEventOutput: true,
}

// offloadInsnBudget bounds the program's length (NFP code store).
const offloadInsnBudget = 8192

func offloadViolations(spec *ebpf.CollectionSpec) []string {
	var out []string
	bad := func(f string, a ...any) { out = append(out, fmt.Sprintf(f, a...)) }
	for name, m := range spec.Maps {
		if strings.HasPrefix(name, ".") {
			bad("map %s: global data is a host map and cannot be offloaded", name)
			continue
		}
		if m.Type != ebpf.Hash && m.Type != ebpf.Array {
			bad("map %s: type %s (HASH and ARRAY only)", name, m.Type)
		}
		if m.Flags != 0 {
			bad("map %s: flags %#x (none allowed)", name, m.Flags)
		}
		if e := round8(m.KeySize) + round8(m.ValueSize); e > OffloadElemMax {
			bad("map %s: element of %d bytes (key %d + value %d, rounded to 8) exceeds %d", name, e, m.KeySize, m.ValueSize, OffloadElemMax)
		}
	}
	for name, p := range spec.Programs {
		if p.Type != ebpf.XDP {
			bad("program %s: type %s", name, p.Type)
		}
		if n := len(p.Instructions); n > offloadInsnBudget {
			bad("program %s: %d instructions, budget %d", name, n, offloadInsnBudget)
		}
		out = append(out, insnViolations(name, p.Instructions)...)
	}
	return out
}

func round8(n uint32) uint32 { return (n + 7) &^ 7 }

// insnViolations checks helpers, atomics, global data and plain stores
// through pointers returned by map lookups (tracked per register in a linear
// scan: a heuristic that catches the usual "v->x = y", not every path).
func insnViolations(prog string, insns asm.Instructions) []string {
	var out []string
	var mapPtr [11]bool
	for i := range insns {
		ins := &insns[i]
		at := func() string {
			if sym := ins.Symbol(); sym != "" {
				return prog + "/" + sym
			}
			return fmt.Sprintf("%s insn %d", prog, i)
		}
		if ins.Symbol() != "" { // a new function: registers hold its arguments
			mapPtr = [11]bool{}
		}
		switch {
		case ins.IsKfuncCall():
			out = append(out, fmt.Sprintf("%s: kfunc call", at()))
		case ins.IsBuiltinCall():
			fn := asm.BuiltinFunc(ins.Constant)
			if !offloadHelpers[fn] {
				out = append(out, fmt.Sprintf("%s: helper %s is not available offloaded", at(), fn))
			}
			for r := 1; r <= 5; r++ {
				mapPtr[r] = false
			}
			mapPtr[0] = fn == asm.FnMapLookupElem
			continue
		case ins.IsFunctionCall():
			for r := 0; r <= 5; r++ {
				mapPtr[r] = false
			}
			continue
		case ins.IsLoadFromMap() && ins.Src == asm.PseudoMapValue:
			out = append(out, fmt.Sprintf("%s: direct map value access (global data)", at()))
		}
		op := ins.OpCode
		switch op.Class() {
		case asm.StXClass, asm.StClass:
			if op.Mode() == asm.AtomicMode {
				if a := op.AtomicOp(); a != asm.AddAtomic {
					out = append(out, fmt.Sprintf("%s: atomic %s (only add)", at(), a))
				}
				continue
			}
			if int(ins.Dst) < len(mapPtr) && mapPtr[ins.Dst] {
				out = append(out, fmt.Sprintf("%s: plain store into a map value (use an atomic add or map_update_elem)", at()))
			}
			continue
		case asm.ALUClass, asm.ALU64Class:
			if a := op.ALUOp(); a == asm.Div || a == asm.Mod {
				out = append(out, fmt.Sprintf("%s: %s", at(), a))
			}
			d := int(ins.Dst)
			switch {
			case op.ALUOp() == asm.Mov && op.Source() == asm.RegSource:
				mapPtr[d] = mapPtr[ins.Src]
			case (op.ALUOp() == asm.Add || op.ALUOp() == asm.Sub) && op.Source() == asm.ImmSource:
				// pointer arithmetic keeps pointing into the value
			default:
				mapPtr[d] = false
			}
			continue
		case asm.LdXClass, asm.LdClass:
			if int(ins.Dst) < len(mapPtr) {
				mapPtr[ins.Dst] = false
			}
		}
	}
	return out
}

func TestOffloadObjectFitsHardware(t *testing.T) {
	spec, err := loadXdpoff()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range offloadViolations(spec) {
		t.Error(v)
	}
	for name, p := range spec.Programs {
		t.Logf("%s: %d instructions (budget %d)", name, len(p.Instructions), offloadInsnBudget)
	}
}

// The check itself must catch what it is for: the host flavor breaks every rule.
func TestOffloadCheckCatchesHostFlavor(t *testing.T) {
	spec, err := loadXdp()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(offloadViolations(spec), "\n")
	for _, want := range []string{
		"type PerCPUArray", "type LRUHash", "helper FnKtimeGetNs", "helper FnXdpLoadBytes",
		"helper FnCsumDiff", "helper FnLoop", "helper FnSpinLock", "plain store into a map value",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("host flavor: %q not reported; got:\n%s", want, got)
		}
	}
}
