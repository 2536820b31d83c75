package events

import (
	"errors"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestMemory(t *testing.T) {
	m := NewMemory()
	labels := map[string]string{"k": "v"}
	m.Emit(Event{Type: TypeFunctionDeploy, Labels: labels})
	labels["k"] = "changed"
	m.Emit(Event{Type: TypeFunctionRollback})

	if got, want := m.Types(), []string{TypeFunctionDeploy, TypeFunctionRollback}; !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
	evs := m.Events()
	if len(evs) != 2 || evs[0].Labels["k"] != "v" {
		t.Fatalf("Events() = %+v, want 2 events, the first with its labels as emitted", evs)
	}
	if evs[0].Time.IsZero() {
		t.Error("Memory.Emit left Time zero, want it filled")
	}
	evs[0].Labels["k"] = "mutated"
	if got := m.Events()[0].Labels["k"]; got != "v" {
		t.Errorf("after mutating a returned event, stored label = %q, want %q", got, "v")
	}
	m.Reset()
	if got := len(m.Events()); got != 0 {
		t.Errorf("after Reset, len(Events()) = %d, want 0", got)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.Emit(Event{Type: TypeLimitTimeout})
				_ = m.Types()
			}
		})
	}
	wg.Wait()
	if got := len(m.Events()); got != 800 {
		t.Errorf("len(Events()) = %d, want 800", got)
	}
}

func TestDiscardIsAnEmitter(t *testing.T) {
	if _, ok := Discard.(discard); !ok {
		t.Fatalf("Discard is %T, want discard", Discard)
	}
	Discard.Emit(Event{Type: TypeAdminAuth}) // must not panic or block
	if err := Discard.TryEmit(Event{Type: TypeAdminAuth}); err != nil {
		t.Errorf("Discard.TryEmit = %v, want nil", err)
	}
	if err := Discard.Health(); err != nil {
		t.Errorf("Discard.Health = %v, want nil", err)
	}
}

func TestPackageDoc(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "event.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package events ") {
		t.Errorf("event.go has no package doc comment starting with %q", "Package events ")
	}
}

func TestMemoryUnavailable(t *testing.T) {
	m := NewMemory()
	if err := m.Health(); err != nil {
		t.Fatalf("Health of a new Memory = %v, want nil", err)
	}
	m.SetUnavailable("simulated outage")
	err := m.TryEmit(Event{Type: TypeRouteAuth})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "simulated outage") {
		t.Errorf("TryEmit while unavailable = %v, want ErrUnavailable with the reason", err)
	}
	if err := m.Health(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Health while unavailable = %v, want ErrUnavailable", err)
	}
	m.Emit(Event{Type: TypeFunctionDeploy}) // plain Emit still records
	if got, want := m.Types(), []string{TypeFunctionDeploy}; !slices.Equal(got, want) || m.Refused() != 1 {
		t.Errorf("Types() = %v, Refused() = %d; want %v and 1", got, m.Refused(), want)
	}
	m.SetUnavailable("")
	if err := m.TryEmit(Event{Type: TypeRouteAuth}); err != nil || m.Health() != nil {
		t.Errorf("TryEmit, Health after recovery = %v, %v; want nil, nil", err, m.Health())
	}
	if got := len(m.Events()); got != 2 {
		t.Errorf("len(Events()) = %d, want 2", got)
	}
}
