// Command warden is the warden server and its command-line client.
package main

import (
	"os"

	"warden/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
