package warden

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The examples in docs/abi.md, byte for byte.
func TestDocExample(t *testing.T) {
	in := unhex(t, `03000000 474554 05000000 2f70696e67 00000000 01000000 68 05000000 6874747073
		09000000 312e322e332e343a35 02000000 7231 00000000 00000000 00000000`)
	req, err := decodeRequest(in)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "GET" || req.Path != "/ping" || req.Query != "" || req.Host != "h" || req.Scheme != "https" ||
		req.RemoteAddr != "1.2.3.4:5" || req.RequestID != "r1" || len(req.Header) != 0 || len(req.Vars) != 0 || len(req.Body) != 0 {
		t.Errorf("decodeRequest(doc example) = %+v", req)
	}
	want := unhex(t, `c8000000 01000000 0c000000 436f6e74656e742d54797065
		10000000 6170706c69636174696f6e2f6a736f6e 0b000000 7b226f6b223a747275657d`)
	got := appendResponse(nil, &Response{Header: Header{{"Content-Type", "application/json"}}, Body: []byte(`{"ok":true}`)})
	if !bytes.Equal(got, want) {
		t.Errorf("appendResponse(doc example) = %x, want %x", got, want)
	}
}

func TestDecodeRequestMalformed(t *testing.T) {
	for _, in := range [][]byte{
		nil,
		{1, 0, 0},
		{0xff, 0xff, 0xff, 0xff},
		append(bytes.Repeat([]byte{0, 0, 0, 0}, 7), 0xff, 0xff, 0xff, 0x7f), // 2^31 headers
		append(bytes.Repeat([]byte{0, 0, 0, 0}, 10), 0),                     // trailing byte
	} {
		if req, err := decodeRequest(in); err == nil {
			t.Errorf("decodeRequest(%x) = %+v, want an error", in, req)
		}
	}
}

func TestAppendResponseStatus(t *testing.T) {
	for _, tc := range []struct {
		resp *Response
		want uint32
	}{
		{&Response{}, 200},
		{&Response{Status: 404}, 404},
		{&Response{Status: 42}, 500},
		{nil, 500},
	} {
		b := appendResponse(nil, tc.resp)
		if got := uint32(b[0]) | uint32(b[1])<<8; got != tc.want {
			t.Errorf("appendResponse(%+v) status = %d, want %d", tc.resp, got, tc.want)
		}
	}
}

func TestServe(t *testing.T) {
	defer func(h HandlerFunc) { handler = h }(handler)
	Handle(func(r *Request) *Response {
		return &Response{Status: 201, Header: Header{{"X-Id", r.RequestID}}, Body: append([]byte(r.Header.Get("x-a")+":"), r.Body...)}
	})
	var in []byte
	for _, s := range []string{"POST", "/p", "q=1", "h", "https", "1.2.3.4:5", "rid"} {
		in = appendStr(in, s)
	}
	in = appendU32(in, 2)
	in = appendStr(appendStr(in, "X-A"), "v1")
	in = appendStr(appendStr(in, "X-A"), "v2")
	in = appendU32(in, 1)
	in = appendStr(appendStr(in, "route"), "POST /p")
	in = appendStr(in, "body")
	out := serve(in, nil)
	want := appendResponse(nil, &Response{Status: 201, Header: Header{{"X-Id", "rid"}}, Body: []byte("v1:body")})
	if !bytes.Equal(out, want) {
		t.Errorf("serve = %x, want %x", out, want)
	}
}

func TestCanonicalKey(t *testing.T) {
	for in, want := range map[string]string{
		"content-type": "Content-Type", "Content-Type": "Content-Type", "X-REQUEST-ID": "X-Request-Id",
		"x": "X", "": "", "bad key": "bad key",
	} {
		if got := canonicalKey(in); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", in, got, want)
		}
	}
	h := Header{}
	h.Add("x-a", "1")
	h.Add("X-A", "2")
	h.Add("Other", "o")
	if got := h.Values("x-A"); len(got) != 2 || h.Get("X-a") != "1" || h[0].Name != "X-A" {
		t.Errorf("Header = %v", h)
	}
	h.Set("x-a", "3")
	if got := h.Values("X-A"); len(got) != 1 || got[0] != "3" || h.Get("other") != "o" {
		t.Errorf("after Set: Header = %v", h)
	}
	h.Del("X-A")
	if h.Get("x-a") != "" || len(h) != 1 {
		t.Errorf("after Del: Header = %v", h)
	}
	if v := (Vars{{"route", "GET /"}}); v.Get("route") != "GET /" || v.Get("x") != "" {
		t.Errorf("Vars.Get on %v", v)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0, 0, 0, 0}, 10))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if (req == nil) == (err == nil) {
			t.Fatalf("decodeRequest = %v, %v: want exactly one", req, err)
		}
	})
}
