// Command precompile fills a wazero compilation cache with the compiled code
// of warden's test guests. Package testguest runs it, built without -race,
// so that race-enabled test binaries load the code instead of compiling it.
//
// It compiles through sandbox.Engine.Check, the path a deploy takes, so the
// cache holds exactly what the sandbox will look up (see the sandbox's
// package Notes on sharing the cache).
//
// Usage: precompile -cache DIR ABI=FILE...
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"warden/internal/manifest"
	"warden/internal/sandbox"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "precompile:", err)
		os.Exit(1)
	}
}

// job is one module to compile.
type job struct {
	abi  manifest.ABI
	path string
	size int64
}

func run() error {
	cache := flag.String("cache", "", "wazero compilation cache directory")
	flag.Parse()
	if *cache == "" || flag.NArg() == 0 {
		return errors.New("usage: precompile -cache DIR ABI=FILE...")
	}
	var jobs []job
	for _, arg := range flag.Args() {
		abi, path, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("argument %q: want ABI=FILE", arg)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{manifest.ABI(abi), path, fi.Size()})
	}
	// Largest first, so that the last module to compile is a small one.
	slices.SortStableFunc(jobs, func(a, b job) int { return cmp.Compare(b.size, a.size) })

	ctx := context.Background()
	e, err := sandbox.New(ctx, sandbox.Config{CacheDir: *cache})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			wasm, err := os.ReadFile(j.path)
			if err == nil {
				err = e.Check(ctx, j.abi, wasm)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", j.path, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, e.Close(ctx))...)
}
