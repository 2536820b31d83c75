package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"warden/internal/config"
)

// testCA is a throwaway certificate authority for client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert, key}
}

func (ca testCA) client(t *testing.T, cn string, serial int64) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMTLS: a route with auth mtls admits exactly clients whose certificate
// chains to --client-ca, and the function sees who they are.
func TestMTLS(t *testing.T) {
	t.Parallel()
	ca, rogue := newTestCA(t, "partners"), newTestCA(t, "rogue")
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644)
	in := startWith(t, t.TempDir(), func(c *config.Config) { c.ClientCA = caFile })
	in.mustCLI("deploy", "-f", fixture(t, "attack", func(m string) string { return strings.Replace(m, "auth: none", "auth: mtls", 1) }))

	get := func(cert *tls.Certificate) (*http.Response, error) {
		tr := in.client.Transport.(*http.Transport).Clone()
		if cert != nil {
			// Always send it, even when it does not chain to a CA the
			// server named (Go's client would otherwise withhold it).
			tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		defer tr.CloseIdleConnections()
		return (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("https://" + in.srv.PublicAddr() + "/attack?t=env")
	}
	good := ca.client(t, "acme-billing", 0x2a)
	resp, err := get(&good)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != 200 || !regexp.MustCompile(`X_WARDEN_IDENTITY=mtls:[0-9a-f]{12}:2a\b`).MatchString(body) || !strings.Contains(body, "X_WARDEN_SUBJECT=CN=acme-billing") {
		t.Fatalf("trusted client certificate: %d\n%s", resp.StatusCode, body)
	}
	resp, err = get(nil)
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, resp, http.StatusUnauthorized)
	bad := rogue.client(t, "acme-billing", 0x2a)
	if resp, err := get(&bad); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate from an untrusted CA got an answer: %d", resp.StatusCode)
	}
}
