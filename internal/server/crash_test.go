package server_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a warden server in a child process, so it can be killed with
// SIGKILL.
type proc struct {
	cmd           *exec.Cmd
	public, admin string
}

var listenRE = regexp.MustCompile(`functions on https://(\S+), admin API on https://(\S+),`)

func startProc(t *testing.T, data string) *proc {
	t.Helper()
	// The child compiles into DATA/cache: make that the shared cache, so it
	// loads the guests' compiled code instead of compiling it under -race.
	if err := os.Symlink(guests.CacheDir, filepath.Join(data, "cache")); err != nil && !errors.Is(err, fs.ErrExist) {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	args := strings.Join([]string{"server", "--data", data, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, "\x1f")
	cmd.Env = append(os.Environ(), "WARDEN_TEST_SERVER_ARGS="+args)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
	}()
	select {
	case m := <-found:
		p.public, p.admin = m[1], m[2]
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("server process did not announce its addresses")
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

// TestKillDuringDeploy: SIGKILL at random moments of a deploy leaves the
// old or the new version active, never a broken one: after each restart the
// function answers with one of the two, and its versions are contiguous.
func TestKillDuringDeploy(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("kills and restarts a server process several times; skipped with -short")
	}
	data := t.TempDir()
	in := &instance{t: t, data: data}
	p := startProc(t, data)
	in.setClient(t)
	run := func(args ...string) (string, string, int) {
		return in.cliAt(p.admin, args...)
	}
	greeting := func(i int) string { return fmt.Sprintf("Round%d", i) }
	manifest := func(i int) string {
		return fixture(t, "hello", func(m string) string {
			return strings.Replace(m, "env: {GREETING: Hello}", "env: {GREETING: "+greeting(i)+"}", 1)
		})
	}
	if _, e, code := run("deploy", "-f", manifest(0)); code != 0 {
		t.Fatalf("first deploy: %s", e)
	}
	active := 0
	for round := 1; round <= 6; round++ {
		path := manifest(round)
		done := make(chan int, 1)
		go func() {
			_, _, code := run("deploy", "-f", path)
			done <- code
		}()
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		p.kill()
		code := <-done
		p = startProc(t, data)
		resp, err := in.client.Get("https://" + p.public + "/hello?name=x")
		if err != nil {
			t.Fatalf("round %d: GET after restart: %v", round, err)
		}
		body := readBody(t, resp)
		switch {
		case resp.StatusCode == 200 && strings.HasPrefix(body, greeting(round)+","):
			active = round
		case resp.StatusCode == 200 && strings.HasPrefix(body, greeting(active)+","):
			if code == 0 {
				t.Fatalf("round %d: the deploy reported success but the old version is active", round)
			}
		default:
			t.Fatalf("round %d: after kill and restart GET /hello = %d %q, want %s or %s", round, resp.StatusCode, body, greeting(active), greeting(round))
		}
		t.Logf("round %d: deploy exit %d, active after restart: %s", round, code, greeting(active))
		out, e, c := run("functions", "get", "hello", "--json")
		if c != 0 {
			t.Fatalf("round %d: functions get: %s", round, e)
		}
		var fi struct {
			ActiveVersion int `json:"activeVersion"`
			Versions      []struct {
				Version int `json:"version"`
			} `json:"versions"`
		}
		if err := json.Unmarshal([]byte(out), &fi); err != nil {
			t.Fatal(err)
		}
		for i, v := range fi.Versions { // newest first, contiguous down to 1
			if v.Version != len(fi.Versions)-i {
				t.Fatalf("round %d: versions %+v are not contiguous", round, fi.Versions)
			}
		}
		if fi.ActiveVersion < 1 || fi.ActiveVersion > len(fi.Versions) {
			t.Fatalf("round %d: active version %d of %d", round, fi.ActiveVersion, len(fi.Versions))
		}
	}
}
