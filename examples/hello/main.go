//go:build wasip1

// Command hello is a wagi function in plain Go (no SDK): the request arrives
// as CGI environment variables, the response goes to stdout as CGI headers,
// an empty line and the body.
//
//	GOOS=wasip1 GOARCH=wasm go build -o hello.wasm .
package main

import (
	"fmt"
	"net/url"
	"os"
)

func main() {
	q, _ := url.ParseQuery(os.Getenv("QUERY_STRING"))
	name := q.Get("name")
	if name == "" {
		name = "world"
	}
	greeting := os.Getenv("GREETING") // from the manifest's env
	if greeting == "" {
		greeting = "Hello"
	}
	fmt.Print("Content-Type: text/plain; charset=utf-8\n\n")
	fmt.Printf("%s, %s! (%s %s)\n", greeting, name, os.Getenv("REQUEST_METHOD"), os.Getenv("PATH_INFO"))
}
