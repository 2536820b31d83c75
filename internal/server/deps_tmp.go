package server

// Temporary: keeps the chosen dependencies in go.mod while the packages that
// use them are written. Removed once each has a real importer.
import (
	_ "github.com/goccy/go-yaml"
	_ "github.com/pressly/goose/v3"
	_ "github.com/spf13/cobra"
	_ "github.com/tetratelabs/wazero"
	_ "golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite"
)
