package events

import (
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
