//go:build wasip1

// Command reactor is a reactor guest (warden SDK) for the sandbox tests.
// The request path picks the behaviour.
package main

import (
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"

	warden "warden/sdk/go"
)

var (
	count int
	sink  [][]byte
)

func init() {
	warden.Handle(handle)
}

func text(s string) *warden.Response {
	return &warden.Response{Header: warden.Header{{Name: "Content-Type", Value: "text/plain"}}, Body: []byte(s)}
}

func handle(r *warden.Request) *warden.Response {
	switch r.Path {
	case "/count":
		count++
		return text(strconv.Itoa(count))
	case "/echo":
		var b strings.Builder
		b.WriteString(r.Method + " " + r.Path + "?" + r.Query + " host=" + r.Host + " scheme=" + r.Scheme +
			" remote=" + r.RemoteAddr + " id=" + r.RequestID + "\n")
		hdr := map[string][]string{}
		var keys []string
		for _, f := range r.Header {
			if hdr[f.Name] == nil {
				keys = append(keys, f.Name)
			}
			hdr[f.Name] = append(hdr[f.Name], f.Value)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteString("h " + k + "=" + strings.Join(hdr[k], ",") + "\n")
		}
		vars := append(warden.Vars(nil), r.Vars...)
		sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
		for _, v := range vars {
			b.WriteString("v " + v.Name + "=" + v.Value + "\n")
		}
		b.WriteString("body=" + string(r.Body))
		resp := text(b.String())
		resp.Status = 202
		resp.Header.Add("X-Multi", "a")
		resp.Header.Add("X-Multi", "b")
		return resp
	case "/env":
		env := os.Environ()
		sort.Strings(env)
		return text(strings.Join(env, "\n") + "\nGREETING=" + warden.Env("GREETING") + "\nargs=" + strings.Join(os.Args, " "))
	case "/gc": // the collector settings the runtime took from its environment
		gogc := debug.SetGCPercent(100)
		debug.SetGCPercent(gogc)
		return text("gogc=" + strconv.Itoa(gogc) + " memlimit=" + strconv.FormatInt(debug.SetMemoryLimit(-1), 10))
	case "/log":
		warden.Log(warden.LevelWarn, "hello from the guest")
		warden.Log(warden.LevelInfo, strings.Repeat("x", 5000))
		return text("logged")
	case "/big":
		n, _ := strconv.Atoi(r.Query)
		return &warden.Response{Body: make([]byte, n)}
	case "/badheader":
		return &warden.Response{Header: warden.Header{{Name: "X-Evil", Value: "a\r\nSet-Cookie: x=1"}}}
	case "/panic":
		panic("boom")
	case "/loop":
		for {
		}
	case "/alloc":
		for {
			b := make([]byte, 1<<20)
			b[0] = 1
			sink = append(sink, b)
		}
	}
	return &warden.Response{Status: 404}
}

func main() {}
