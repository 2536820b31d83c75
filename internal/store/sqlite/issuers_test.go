package sqlite

import (
	"path/filepath"
	"testing"

	"warden/internal/store"
	"warden/internal/store/storetest"
)

func TestIssuers(t *testing.T) {
	storetest.RunIssuers(t, func(t *testing.T) store.Issuers {
		db, err := Open(filepath.Join(t.TempDir(), "warden.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
