//go:build !wasip1

package warden

// Outside WebAssembly (unit tests of handlers, go vet) there is no host:
// every capability call fails with ErrUnavailable.

func secretGet(string) ([]byte, error) { return nil, ErrUnavailable }

func appendSecret(dst []byte, _ string) ([]byte, error) { return dst, ErrUnavailable }

func kvGet(string, string) ([]byte, error) { return nil, ErrUnavailable }

func kvSet(string, string, []byte, int64) error { return ErrUnavailable }

func kvDelete(string, string) error { return ErrUnavailable }

func kvList(string, string, string, uint32) ([]string, error) { return nil, ErrUnavailable }

func fetch(string, string, Header, []byte) (*Response, error) { return nil, ErrUnavailable }
