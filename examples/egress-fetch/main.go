//go:build wasip1

// Command egress-fetch is a reactor function that fetches
// https://example.com/ through warden's egress capability with an ordinary
// net/http client (wardenhttp.Transport) and answers the status and the
// number of bytes received. The manifest grants exactly that origin; any
// other destination is refused by warden, not by this code.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o egress-fetch.wasm .
package main

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	warden "warden/sdk/go"
	"warden/sdk/go/wardenhttp"
)

const target = "https://example.com/"

var (
	client     = &http.Client{Transport: wardenhttp.Transport{}, Timeout: 8 * time.Second}
	jsonHeader = warden.Header{{Name: "Content-Type", Value: "application/json"}}
)

func init() {
	warden.Handle(fetch)
}

func fetch(*warden.Request) *warden.Response {
	resp, err := client.Get(target)
	if err != nil {
		warden.Log(warden.LevelWarn, "fetch "+target+": "+err.Error())
		return answer(502, `{"error":"`+kind(err)+`"}`)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return answer(502, `{"error":"read"}`)
	}
	return answer(200, `{"url":"`+target+`","status":`+strconv.Itoa(resp.StatusCode)+`,"bytes":`+strconv.FormatInt(n, 10)+`}`)
}

// kind names the failure without echoing anything from the destination.
func kind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{warden.ErrDenied, "denied"}, {warden.ErrTimeout, "timeout"}, {warden.ErrNetwork, "network"},
		{warden.ErrTooLarge, "too_large"}, {warden.ErrInvalid, "invalid"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "unavailable"
}

func answer(status int, body string) *warden.Response {
	return &warden.Response{Status: status, Header: jsonHeader, Body: []byte(body)}
}

func main() {}
