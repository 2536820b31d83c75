package vulndb

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"go1.21", "v1.21.0", true},
		{"go1.21.5", "v1.21.5", true},
		{"go1.22rc1", "v1.22.0-rc.1", true},
		{"go1.21rc2", "v1.21.0-rc.2", true},
		{"go1.18beta1", "v1.18.0-beta.1", true},
		{"go1.9.2rc2", "v1.9.2-rc.2", true},
		{"go1", "v1.0.0", true},
		{"go1.26.0", "v1.26.0", true},
		{"go1.22.0 X:boringcrypto", "v1.22.0", true},
		{"1.21.5", "v1.21.5", true},
		{"v1.2.3", "v1.2.3", true},
		{"v1.2", "v1.2.0", true},
		{"v0.0.0-20230905200255-921286631fa9", "v0.0.0-20230905200255-921286631fa9", true},
		{"v25.0.13+incompatible", "v25.0.13+incompatible", true},
		{"v1.22.0-rc.1", "v1.22.0-rc.1", true},
		{"go1.0", "", false},
		{"devel go1.23-abcdef Tue", "", false},
		{"go1.21.x", "", false},
		{"go1.021", "", false},
		{"gopher", "", false},
		{"(devel)", "", false},
		{"", "", false},
		{"   ", "", false},
		{"garbage", "", false},
		{"v1.2.3.4", "", false},
		{"1.x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := Normalize(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Normalize(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
