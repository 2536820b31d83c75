// Command warden-bench runs `make bench`: end-to-end throughput and latency
// through the gateway against a bare net/http baseline measured in the same
// run, cold starts, and memory with many idle functions.
package main

import (
	"os"

	"warden/internal/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:])) }
