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
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
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

func run() error {
	cache := flag.String("cache", "", "wazero compilation cache directory")
	flag.Parse()
	if *cache == "" || flag.NArg() == 0 {
		return errors.New("usage: precompile -cache DIR ABI=FILE...")
	}
	ctx := context.Background()
	e, err := sandbox.New(ctx, sandbox.Config{CacheDir: *cache})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	errs := make([]error, flag.NArg())
	for i, arg := range flag.Args() {
		abi, path, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("argument %q: want ABI=FILE", arg)
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			wasm, err := os.ReadFile(path)
			if err == nil {
				err = e.Check(ctx, manifest.ABI(abi), wasm)
			}
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", path, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, e.Close(ctx))...)
}
