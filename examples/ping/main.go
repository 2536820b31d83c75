//go:build wasip1

// Command ping is the smallest warden reactor function: a fixed JSON body.
// The benchmarks use it to measure the platform's own overhead.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ping.wasm .
package main

import warden "warden/sdk/go"

var (
	body   = []byte(`{"ok":true}`)
	header = warden.Header{{Name: "Content-Type", Value: "application/json"}}
	resp   = &warden.Response{Status: 200, Header: header, Body: body}
)

func init() {
	warden.Handle(func(*warden.Request) *warden.Response { return resp })
}

func main() {}
