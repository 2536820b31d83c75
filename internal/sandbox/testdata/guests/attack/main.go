//go:build wasip1

// Command attack is a hostile wagi guest for the sandbox tests. The query
// parameter t picks what it tries.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

var sink [][]byte

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	switch q.Get("t") {
	case "ok", "":
		fmt.Print("Content-Type: text/plain\n\nok")
	case "passwd":
		var out []string
		if b, err := os.ReadFile("/etc/passwd"); err != nil {
			out = append(out, "passwd: error: "+err.Error())
		} else {
			out = append(out, "passwd: read "+strconv.Itoa(len(b))+" bytes: "+string(b))
		}
		if ents, err := os.ReadDir("/"); err != nil {
			out = append(out, "readdir: error: "+err.Error())
		} else {
			out = append(out, fmt.Sprintf("readdir: %d entries", len(ents)))
		}
		if err := os.WriteFile("/tmp/warden-escape", []byte("x"), 0o644); err != nil {
			out = append(out, "write: error: "+err.Error())
		} else {
			out = append(out, "write: ok")
		}
		fmt.Print("Content-Type: text/plain\n\n" + strings.Join(out, "\n"))
	case "env", "cgi":
		env := os.Environ()
		sort.Strings(env)
		in, _ := io.ReadAll(os.Stdin)
		if q.Get("t") == "cgi" {
			fmt.Print("Status: 201 Created\r\nLocation: /things/1\r\nX-Custom: yes\r\nContent-Type: text/plain\r\n\r\n")
		} else {
			fmt.Print("Content-Type: text/plain\n\n")
		}
		fmt.Print(strings.Join(env, "\n") + "\n--stdin--\n" + string(in))
	case "args":
		fmt.Print("Content-Type: text/plain\n\n" + strings.Join(os.Args, " "))
	case "socket":
		var out []string
		if c, err := net.Dial("tcp", q.Get("addr")); err != nil {
			out = append(out, "dial: error: "+err.Error())
		} else {
			c.Close()
			out = append(out, "dial: ok")
		}
		if l, err := net.Listen("tcp", "127.0.0.1:0"); err != nil {
			out = append(out, "listen: error: "+err.Error())
		} else {
			l.Close()
			out = append(out, "listen: ok")
		}
		if f := os.NewFile(3, "fd3"); f != nil {
			if l, err := net.FileListener(f); err != nil {
				out = append(out, "fd3: error: "+err.Error())
			} else {
				l.Close()
				out = append(out, "fd3: ok")
			}
		}
		fmt.Print("Content-Type: text/plain\n\n" + strings.Join(out, "\n"))
	case "clock":
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		fmt.Printf("Content-Type: text/plain\n\n%d %s", time.Now().Unix(), hex.EncodeToString(b))
	case "loop":
		for {
		}
	case "alloc":
		for {
			b := make([]byte, 1<<20)
			b[0] = 1
			sink = append(sink, b)
		}
	case "big":
		os.Stdout.WriteString("Content-Type: application/octet-stream\n\n")
		chunk := make([]byte, 64<<10)
		for i := 0; i < 100<<20/len(chunk); i++ {
			os.Stdout.Write(chunk) // errors ignored on purpose: a hostile guest keeps going
		}
	case "stderr":
		line := strings.Repeat("e", 99) + "\n"
		for range 1000 {
			os.Stderr.WriteString(line)
		}
		fmt.Print("Content-Type: text/plain\n\nok")
	case "panic":
		panic("boom")
	case "exit3":
		fmt.Print("Content-Type: text/plain\n\nbye")
		os.Exit(3)
	case "noheader":
		fmt.Print("just a body without headers")
	case "sleep":
		ms, _ := strconv.Atoi(q.Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Print("Content-Type: text/plain\n\nslept")
	case "secret":
		// A wagi guest may call the warden host module too: a 16-byte
		// buffer first, then result_take for a longer value.
		name := []byte(q.Get("name"))
		out := make([]byte, 16)
		n := secretGet(ptr(name), uint32(len(name)), ptr(out), uint32(len(out)))
		take := int32(0)
		if n > int32(len(out)) {
			out = make([]byte, n)
			take = resultTake(ptr(out), uint32(n))
		}
		runtime.KeepAlive(name)
		fmt.Printf("Content-Type: text/plain\nX-Ret: %d\nX-Take: %d\n\n", n, take)
		if n >= 0 {
			os.Stdout.Write(out[:n])
		}
	}
}

//go:wasmimport warden secret_get
func secretGet(namePtr, nameLen, outPtr, outCap uint32) int32

//go:wasmimport warden result_take
func resultTake(outPtr, outCap uint32) int32

func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
