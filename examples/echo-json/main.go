//go:build wasip1

// Command echo-json is a reactor function: it parses a JSON body and
// answers it back with a few computed fields. Invalid JSON gets a 400 with a
// JSON error.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o echo-json.wasm .
package main

import (
	"encoding/json"

	warden "warden/sdk/go"
)

type reply struct {
	Echo      any    `json:"echo"`
	Keys      int    `json:"keys"`  // keys of a top-level object, 0 otherwise
	Bytes     int    `json:"bytes"` // request body size
	Type      string `json:"type"`  // JSON type of the body
	RequestID string `json:"requestId"`
}

var jsonHeader = warden.Header{{Name: "Content-Type", Value: "application/json"}}

func init() {
	warden.Handle(handle)
}

func handle(r *warden.Request) *warden.Response {
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		return answer(400, map[string]string{"error": "invalid JSON: " + err.Error(), "requestId": r.RequestID})
	}
	out := reply{Echo: v, Bytes: len(r.Body), RequestID: r.RequestID}
	switch t := v.(type) {
	case map[string]any:
		out.Keys, out.Type = len(t), "object"
	case []any:
		out.Type = "array"
	case string:
		out.Type = "string"
	case float64:
		out.Type = "number"
	case bool:
		out.Type = "boolean"
	default:
		out.Type = "null"
	}
	return answer(200, out)
}

func answer(status int, v any) *warden.Response {
	b, err := json.Marshal(v)
	if err != nil {
		warden.Log(warden.LevelError, "marshal: "+err.Error())
		return &warden.Response{Status: 500, Header: jsonHeader, Body: []byte(`{"error":"internal error"}`)}
	}
	return &warden.Response{Status: status, Header: jsonHeader, Body: b}
}

func main() {}
