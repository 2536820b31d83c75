package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"warden/internal/pki"
)

// LoadResult is what one load run measured.
type LoadResult struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	Seconds  float64       `json:"seconds"`
	RPS      float64       `json:"rps"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Status   map[int]int   `json:"status"`
}

// loadgen is the load generator's process: keep-alive HTTPS/1.1 connections,
// each worker sending one request at a time, for a fixed duration after a
// warm-up. It prints one JSON LoadResult.
func loadgen(args []string) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", "", "target URL")
	method := fs.String("method", "GET", "method")
	body := fs.String("body", "", "request body")
	conns := fs.Int("c", 32, "connections")
	dur := fs.Duration("d", 5*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "warm-up duration")
	cacert := fs.String("cacert", "", "CA to trust")
	header := fs.String("header", "", "one request header, K: V")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pool, err := pki.CertPool(*cacert)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 keep-alive
		DisableCompression:  true,
	}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	run := func(d time.Duration, record bool) LoadResult {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var mu sync.Mutex
		res := LoadResult{Status: map[int]int{}}
		var lat []time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		for range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, 4096)
				status := map[int]int{}
				errs := 0
				for ctx.Err() == nil {
					req, _ := http.NewRequest(*method, *url, bytes.NewReader([]byte(*body)))
					if *body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					if k, v, ok := strings.Cut(*header, ":"); ok {
						req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
					}
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						errs++
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					local = append(local, time.Since(t0))
					status[resp.StatusCode]++
					if resp.StatusCode != 200 {
						errs++
					}
				}
				mu.Lock()
				lat = append(lat, local...)
				for k, v := range status {
					res.Status[k] += v
				}
				res.Errors += errs
				mu.Unlock()
			}()
		}
		wg.Wait()
		if !record {
			return res
		}
		res.Seconds = time.Since(start).Seconds()
		res.Requests = len(lat)
		res.RPS = float64(len(lat)) / res.Seconds
		slices.Sort(lat)
		if len(lat) > 0 {
			res.P50 = lat[len(lat)/2]
			res.P99 = lat[len(lat)*99/100]
		}
		return res
	}
	run(*warm, false)
	res := run(*dur, true)
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}
