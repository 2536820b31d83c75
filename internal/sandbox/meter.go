package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// How guest code is stopped (see docs/RATIONALE.md, "Guests stop
// themselves"). A module is instrumented by package fuel: it counts down a
// fuel global at every function entry and loop header and calls
// fuelModule.fuelYield when it runs out; fuelYield traps the guest once
// its invocation's context is done or its function is being terminated.
// Such a module runs in a runtime without wazero's termination checks
// (WithCloseOnContextDone), which leave native code for Go at every loop
// header. A module fuel cannot instrument runs as it is, in a runtime with
// those checks.
//
// The compilation cache is shared by both kinds of runtime, so the two
// must never compile the same bytes: every instrumented module imports
// fuelModule, and no module that does is ever compiled as it is (Check
// refuses imports from any module but wasi and warden, and code refuses
// it again).
const (
	fuelModule = "warden_fuel"
	fuelYield  = "yield"
	// fuelBudget is the weighted instructions a guest runs between two
	// yields. The weights overcount (a loop is charged its whole body at
	// every iteration, and Go's code enters a loop at every call and
	// jump), so the budget is spent fast: measured, a tight loop yields
	// every ~4 ms, examples/echo-json once in ~5 requests. Each yield
	// leaves native code for Go (about 0.8 µs); at 1<<20 echo-json
	// yielded ~3 times a request, 5 % of its time.
	fuelBudget = 1 << 24
)

// code is what a runtime compiles for a module.
type code struct {
	wasm []byte
	// metered: wasm is instrumented; compile and run it in a runtime
	// without termination checks, with the fuel host module.
	metered bool
}

// prepare returns the code to compile for wasm: instrumented when package
// fuel can do it, else wasm itself (to run with wazero's checks).
func prepare(wasm []byte) (code, error) {
	res, err := instrument(wasm, fuelOptions{Module: fuelModule, Name: fuelYield, Budget: fuelBudget})
	switch {
	case err == nil:
		return code{wasm: res.Wasm, metered: true}, nil
	case errors.Is(err, errFuelUnsupported) && !importsFrom(wasm, fuelModule):
		return code{wasm: wasm}, nil
	case errors.Is(err, errFuelUnsupported):
		return code{}, fmt.Errorf("module imports from %q, which is reserved", fuelModule)
	default:
		return code{}, fmt.Errorf("module does not compile: %w", err)
	}
}

// importsFrom reports whether wasm imports anything from module (or
// cannot be read, which counts as yes).
func importsFrom(wasm []byte, module string) bool {
	imps, err := readImports(wasm)
	if err != nil {
		return true
	}
	for _, imp := range imps {
		if imp.module == module {
			return true
		}
	}
	return false
}

// instantiateFuelModule adds the yield function to a runtime for metered
// code.
func instantiateFuelModule(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(fuelModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(yield), nil, nil).
		Export(fuelYield).
		Instantiate(ctx)
	return err
}

// yield is called by metered guest code when its fuel runs out. It returns
// (and the guest goes on with a new budget) unless the invocation's context
// is done or its function is being terminated; then it traps the guest with
// the exit code wazero's own checks would have used.
func yield(ctx context.Context, _ api.Module, _ []uint64) {
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
		}
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
	if cs := callStateFrom(ctx); cs != nil && cs.halt != nil && cs.halt.Load() {
		panic(sys.NewExitError(1))
	}
}

// halt is set when a function's guests must stop (Engine.Close past its
// deadline): metered guests trap at their next yield.
type halt = atomic.Bool
