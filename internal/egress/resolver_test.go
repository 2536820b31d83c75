package egress

import (
	"context"
	"errors"
	"net"
	"sync"
)

// fakeResolver answers from a table; each host has a list of answers
// given in turn (the last one repeats), so a test can model rebinding.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	calls   []string
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, host)
	seq := r.answers[host]
	if len(seq) == 0 {
		return nil, errors.New("no such host")
	}
	n := 0
	for _, c := range r.calls {
		if c == host {
			n++
		}
	}
	ips := seq[min(n-1, len(seq)-1)]
	out := make([]net.IPAddr, 0, len(ips))
	for _, s := range ips {
		ip, zone, _ := cutZone(s)
		out = append(out, net.IPAddr{IP: net.ParseIP(ip), Zone: zone})
	}
	return out, nil
}

func cutZone(s string) (ip, zone string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (r *fakeResolver) lookups() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}
