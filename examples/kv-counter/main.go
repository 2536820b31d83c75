//go:build wasip1

// Command kv-counter is a reactor function that keeps named counters in
// the KV bucket "counters": POST /count/{name} increments one and GET
// /count/{name} reads it, both answering {"name":…,"count":…}.
//
// KV has no compare-and-set, so two increments of one counter at the same
// moment can count once: fine for an example, not for money.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o kv-counter.wasm .
package main

import (
	"errors"
	"strconv"
	"strings"

	warden "warden/sdk/go"
)

const bucket = "counters"

var jsonHeader = warden.Header{{Name: "Content-Type", Value: "application/json"}}

func init() {
	warden.Handle(handle)
}

func handle(r *warden.Request) *warden.Response {
	name, ok := strings.CutPrefix(r.Path, "/count/")
	if !ok || !validName(name) {
		return answer(400, `{"error":"counter names are 1 to 64 letters, digits, '-' or '_'"}`)
	}
	n, err := read(name)
	if err != nil {
		return failed(err)
	}
	if r.Method == "POST" {
		n++
		if err := warden.KVSet(bucket, name, strconv.AppendInt(nil, n, 10), 0); err != nil {
			return failed(err)
		}
	}
	return answer(200, `{"name":"`+name+`","count":`+strconv.FormatInt(n, 10)+`}`)
}

// read returns the counter's value; a counter never written is 0.
func read(name string) (int64, error) {
	v, err := warden.KVGet(bucket, name)
	if errors.Is(err, warden.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// validName keeps names safe to put in a key and in the JSON answer as is.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func failed(err error) *warden.Response {
	warden.Log(warden.LevelError, "kv: "+err.Error())
	return answer(503, `{"error":"counter store unavailable"}`)
}

func answer(status int, body string) *warden.Response {
	return &warden.Response{Status: status, Header: jsonHeader, Body: []byte(body)}
}

func main() {}
