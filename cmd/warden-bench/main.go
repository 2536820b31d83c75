// Command warden-bench runs `make bench`: it starts bin/warden server as a
// user would, drives its routes with wrk against a bare net/http baseline in
// its own process, measured in the same run, and measures cold starts and
// memory with many idle functions. A run with any answer outside 2xx or a
// socket error prints no figure and makes it exit 1.
package main

import (
	"os"

	"warden/internal/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:])) }
