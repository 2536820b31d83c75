package warden

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
	"time"
)

func TestCodeErr(t *testing.T) {
	for _, tc := range []struct {
		code int32
		want error
	}{
		{-1, ErrDenied}, {-2, ErrNotFound}, {-3, ErrInvalid}, {-4, ErrTooLarge},
		{-5, ErrUnavailable}, {-6, ErrTimeout}, {-7, ErrNetwork},
		{-8, ErrUnavailable}, {math.MinInt32, ErrUnavailable}, {0, ErrUnavailable},
	} {
		if got := codeErr(tc.code); got != tc.want {
			t.Errorf("codeErr(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestTTLMillis(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want int64
		err  error
	}{
		{0, 0, nil},
		{time.Nanosecond, 1, nil}, // never rounds down to "no expiry"
		{time.Millisecond, 1, nil},
		{1500 * time.Microsecond, 2, nil},
		{time.Hour, 3600000, nil},
		{math.MaxInt64, math.MaxInt64 / int64(time.Millisecond), nil}, // the largest the host takes
		{-time.Second, 0, ErrInvalid},
	} {
		got, err := ttlMillis(tc.ttl)
		if got != tc.want || err != tc.err {
			t.Errorf("ttlMillis(%v) = %d, %v, want %d, %v", tc.ttl, got, err, tc.want, tc.err)
		}
	}
}

func TestListLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int
		want  uint32
	}{{-1, 0}, {0, 0}, {1, 1}, {1000, 1000}, {5000, 5000}, {math.MaxInt64, 0}} {
		if got := listLimit(tc.limit); got != tc.want {
			t.Errorf("listLimit(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// The http_request example in docs/abi.md, byte for byte.
func TestHTTPRequestDocExample(t *testing.T) {
	want := unhex(t, `03000000 474554
		14000000 68747470733a2f2f6578616d706c652e636f6d2f
		01000000
		06000000 416363657074
		0a000000 746578742f706c61696e
		00000000`)
	got := appendHTTPRequest(nil, "GET", "https://example.com/", Header{{"Accept", "text/plain"}}, nil)
	if !bytes.Equal(got, want) || len(got) != 63 {
		t.Errorf("appendHTTPRequest(doc example) = %x (%d bytes), want %x (63 bytes)", got, len(got), want)
	}
}

func TestDecodeHTTPResponse(t *testing.T) {
	in := &Response{Status: 201, Header: Header{{"Content-Type", "text/plain"}, {"X-A", "1"}, {"X-A", "2"}}, Body: []byte("hello")}
	for _, owned := range []bool{false, true} {
		enc := appendResponse(nil, in)
		got, err := decodeHTTPResponse(enc, owned)
		if err != nil {
			t.Fatalf("decodeHTTPResponse(owned=%v) error: %v", owned, err)
		}
		if got.Status != 201 || !slices.Equal(got.Header, in.Header) || string(got.Body) != "hello" {
			t.Errorf("decodeHTTPResponse(owned=%v) = %+v, want %+v", owned, got, in)
		}
		clear(enc)
		if aliased := string(got.Body) != "hello"; aliased != owned {
			t.Errorf("decodeHTTPResponse(owned=%v): body aliases the buffer = %v, want %v", owned, aliased, owned)
		}
	}
	empty, err := decodeHTTPResponse(appendResponse(nil, &Response{Status: 204}), false)
	if err != nil || empty.Status != 204 || empty.Header != nil || empty.Body != nil {
		t.Errorf("decodeHTTPResponse(204) = %+v, %v", empty, err)
	}
	ok := appendResponse(nil, in)
	for _, bad := range [][]byte{
		nil,
		ok[:7],
		ok[:len(ok)-1],
		append(slices.Clip(ok), 0),
		{200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
	} {
		if r, err := decodeHTTPResponse(bad, false); err != ErrUnavailable {
			t.Errorf("decodeHTTPResponse(%x) = %+v, %v, want ErrUnavailable", bad, r, err)
		}
	}
}

func TestDecodeKeys(t *testing.T) {
	enc := appendStr(appendStr(appendU32(nil, 2), "a"), "bc")
	keys, err := decodeKeys(enc)
	if err != nil || !slices.Equal(keys, []string{"a", "bc"}) {
		t.Errorf("decodeKeys = %q, %v, want [a bc]", keys, err)
	}
	if keys, err := decodeKeys(appendU32(nil, 0)); err != nil || len(keys) != 0 {
		t.Errorf("decodeKeys(empty list) = %q, %v", keys, err)
	}
	for _, bad := range [][]byte{nil, enc[:len(enc)-1], append(slices.Clip(enc), 'x'), appendU32(nil, 1<<30)} {
		if keys, err := decodeKeys(bad); err != ErrUnavailable {
			t.Errorf("decodeKeys(%x) = %q, %v, want ErrUnavailable", bad, keys, err)
		}
	}
}

// Outside WebAssembly every capability is unavailable, so handlers that use
// them still compile and run in native tests.
func TestCapabilitiesNative(t *testing.T) {
	_, err1 := Secret("K")
	_, err2 := KVGet("b", "k")
	err3 := KVSet("b", "k", nil, 0)
	err4 := KVDelete("b", "k")
	_, err5 := KVList("b", "", "", 0)
	_, err6 := Fetch("GET", "https://example.com/", nil, nil)
	for i, err := range []error{err1, err2, err3, err4, err5, err6} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("capability %d natively = %v, want ErrUnavailable", i+1, err)
		}
	}
	if dst, err := AppendSecret([]byte("x"), "K"); string(dst) != "x" || err != ErrUnavailable {
		t.Errorf("AppendSecret natively = %q, %v, want dst unchanged and ErrUnavailable", dst, err)
	}
	if err := KVSet("b", "k", nil, -time.Second); err != ErrInvalid {
		t.Errorf("KVSet(ttl -1s) = %v, want ErrInvalid", err)
	}
}

func FuzzDecodeResults(f *testing.F) {
	f.Add(appendResponse(nil, &Response{Status: 200, Header: Header{{"A", "b"}}, Body: []byte("x")}))
	f.Add(appendStr(appendU32(nil, 1), "key"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if resp, err := decodeHTTPResponse(b, false); (resp == nil) == (err == nil) {
			t.Fatalf("decodeHTTPResponse = %v, %v: want exactly one", resp, err)
		}
		if keys, err := decodeKeys(b); err == nil && len(keys) > len(b)/4 {
			t.Fatalf("decodeKeys returned %d keys from %d bytes", len(keys), len(b))
		}
	})
}
