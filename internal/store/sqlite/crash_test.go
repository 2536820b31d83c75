package sqlite

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"warden/internal/store"
)

// Environment of the crash helper: the database it deploys into.
const crashEnv = "WARDEN_STORE_CRASH_DB"

var crashFunctions = []string{"alpha", "beta", "gamma"}

func storeArtifact(t testing.TB, db *DB, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	if err := db.PutArtifact(context.Background(), d, data); err != nil {
		t.Fatalf("PutArtifact = %v", err)
	}
	return d
}

// TestCrashHelper is not a test on its own: TestCrashConsistency runs the test
// binary again with only this test selected and crashEnv set, and SIGKILLs it
// while it deploys in a tight loop.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashConsistency; runs only as its child (" + crashEnv + " unset)")
	}
	db, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	fmt.Println("ready") // the parent starts its kill timer now
	pad := make([]byte, 32<<10)
	// A random start spreads the rollback and delete branches over rounds.
	for i := rand.IntN(1000); ; i++ {
		name := crashFunctions[i%len(crashFunctions)]
		// Unique artifacts, plus every 4th deploy sharing one, so that
		// deletes exercise the reference-counted collection.
		data := fmt.Appendf(nil, "%s-%d-%d", name, os.Getpid(), i)
		if i%4 == 0 {
			data = []byte("shared artifact")
		}
		data = append(data, pad...)
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		if err := db.PutArtifact(ctx, d, data); err != nil {
			fmt.Fprintln(os.Stderr, "put artifact:", err)
			os.Exit(4)
		}
		if _, err := db.CreateVersion(ctx, store.Version{Namespace: "default", Name: name, ArtifactDigest: d,
			Manifest: []byte("name: " + name), CreatedBy: "crash"}, true); err != nil {
			fmt.Fprintln(os.Stderr, "create version:", err)
			os.Exit(5)
		}
		switch {
		case i%7 == 3:
			// Roll back to the first version.
			if err := db.Activate(ctx, "default", name, 1); err != nil {
				fmt.Fprintln(os.Stderr, "activate:", err)
				os.Exit(6)
			}
		case i%17 == 16:
			if err := db.DeleteFunction(ctx, "default", name); err != nil {
				fmt.Fprintln(os.Stderr, "delete:", err)
				os.Exit(7)
			}
		}
	}
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the test binary 8 times; skipped with -short")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	const rounds = 8
	totalVersions := 0
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr limitedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- nil
					return
				}
			}
			ready <- errors.New("helper exited before it was ready")
		}()
		select {
		case err := <-ready:
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: %v; stderr: %s", round, err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: helper not ready after 60s; stderr: %s", round, stderr.String())
		}
		delay := time.Duration(2+rand.IntN(40)) * time.Millisecond
		timer := time.NewTimer(delay)
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			t.Fatalf("round %d: helper exited by itself (%v); stderr: %s", round, err, stderr.String())
		case <-timer.C:
		}
		if err := cmd.Process.Signal(os.Kill); err != nil {
			t.Fatalf("round %d: SIGKILL: %v", round, err)
		}
		<-exited
		n := checkCrashedDB(t, path, round)
		t.Logf("round %d: killed after %v; %d versions on disk", round, delay, n)
		totalVersions = max(totalVersions, n)
	}
	if totalVersions == 0 {
		t.Error("no round stored a single version before being killed; the test exercised nothing")
	}
}

// checkCrashedDB opens the database a killed helper left and checks the
// invariants a crash must not break. It returns the number of versions.
func checkCrashedDB(t *testing.T, path string, round int) int {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("round %d: Open after SIGKILL = %v", round, err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	fs, err := db.ListFunctions(ctx)
	if err != nil {
		t.Fatalf("round %d: ListFunctions = %v", round, err)
	}
	total := 0
	for _, f := range fs {
		vs, err := db.Versions(ctx, f.Namespace, f.Name)
		if err != nil {
			t.Fatalf("round %d: Versions(%s) = %v", round, f.Name, err)
		}
		total += len(vs)
		for i, v := range vs { // newest first
			if want := len(vs) - i; v.Version != want {
				t.Fatalf("round %d: %s has versions %v..., want contiguous from 1", round, f.Name, v.Version)
			}
		}
		if f.ActiveVersion < 1 || f.ActiveVersion > len(vs) {
			t.Fatalf("round %d: %s active version %d does not exist (%d versions)", round, f.Name, f.ActiveVersion, len(vs))
		}
		// Every version's artifact, the active one's included, is there and intact.
		for _, v := range vs {
			data, err := db.Artifact(ctx, v.ArtifactDigest)
			if err != nil {
				t.Fatalf("round %d: artifact of %s v%d: %v", round, f.Name, v.Version, err)
			}
			sum := sha256.Sum256(data)
			if hex.EncodeToString(sum[:]) != v.ArtifactDigest || int64(len(data)) != v.ArtifactSize {
				t.Fatalf("round %d: artifact of %s v%d does not match its digest or size", round, f.Name, v.Version)
			}
		}
	}
	return total
}

// limitedBuffer keeps the first 4 KiB written to it; safe for the single
// writer exec uses.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
