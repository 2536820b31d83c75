package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureReusesCA(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	c1, err := Ensure(dir, []string{"warden.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Ensure(dir, []string{"warden.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Leaf.Equal(c2.Leaf) {
		t.Fatal("a second Ensure replaced a valid certificate")
	}
	// A new name renews the server certificate under the same CA.
	c3, err := Ensure(dir, []string{"other.test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := CertPool(filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: pool}); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
	// Near expiry it is renewed too.
	c4, err := Ensure(dir, []string{"other.test"}, now.Add(80*24*time.Hour))
	if err != nil || c4.Leaf.Equal(c3.Leaf) {
		t.Fatalf("certificate 10 days from expiry not renewed (err %v)", err)
	}
}

func TestServerConfigRefusesOldTLS(t *testing.T) {
	cert, err := Ensure(t.TempDir(), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(cert)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				tc.Handshake()
				tc.Close()
			}()
		}
	}()
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
		if err == nil {
			c.Close()
			t.Fatalf("handshake with TLS version %x succeeded", v)
		}
	}
	// CBC suites are not offered.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		c.Close()
		t.Fatal("a CBC cipher suite was negotiated")
	}
}

// TestTicketRotation: a session resumes while its ticket key is current or
// previous, and not after two rotations.
func TestTicketRotation(t *testing.T) {
	dir := t.TempDir()
	cert, err := Ensure(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(cert)
	cfg.NextProtos = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const lifetime = 400 * time.Millisecond
	RotateTickets(ctx, cfg, lifetime)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, cfg)
				tc.Write([]byte("x")) // after the handshake, so the client reads the ticket
				tc.Close()
			}()
		}
	}()
	pool, _ := CertPool(filepath.Join(dir, CAFile))
	cache := tls.NewLRUClientSessionCache(4)
	connect := func() bool {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.ReadAll(c)
		return c.ConnectionState().DidResume
	}
	if connect() {
		t.Fatal("first connection resumed")
	}
	if !connect() {
		t.Fatal("second connection did not resume with a fresh ticket")
	}
	// Wait past the lifetime (two rotations) without new handshakes
	// refreshing the cached ticket.
	cache2 := tls.NewLRUClientSessionCache(4)
	cache = cache2
	connect()
	time.Sleep(lifetime + lifetime/2) // the rotation period is the thing under test
	if connect() {
		t.Fatal("a ticket older than its lifetime resumed a session")
	}
}
