package vulndb

import "testing"

func TestCVSS3Score(t *testing.T) {
	tests := []struct {
		vector string
		score  float64
		ok     bool
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2, true}, // GHSA-c5pj-mqfh-rvc3
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H", 9.1, true}, // GHSA-rhm9-p9w5-fwm7
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5, true},
		{"CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", 5.9, true},
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N", 3.3, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, true},
		{"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 9.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", 0, false},
		{"CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},
		{"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 0, false},
		{"AV:N/AC:L/Au:N/C:C/I:C/A:C", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.vector, func(t *testing.T) {
			score, ok := cvss3Score(tt.vector)
			if score != tt.score || ok != tt.ok {
				t.Errorf("cvss3Score(%q) = %v, %v, want %v, %v", tt.vector, score, ok, tt.score, tt.ok)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	tests := []struct {
		name, extra, want string
	}{
		{"none, as in the Go database", ``, ""},
		{"database_specific word", `,"database_specific":{"severity":"MODERATE"}`, "medium"},
		{"database_specific wins over CVSS", `,"database_specific":{"severity":"LOW"},"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]`, "low"},
		{"CVSS v3 scored", `,"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H"}]`, "critical"},
		{"first scoring vector", `,"severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N"},{"type":"CVSS_V3","score":"garbage"},{"type":"CVSS_V3","score":"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}]`, "low"},
		{"odd database_specific ignored", `,"database_specific":{"severity":7}`, ""},
		{"database_specific not an object", `,"database_specific":"x"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := `{"id":"GO-2099-0001","modified":"2024-01-02T03:04:05Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]` + tt.extra + `}`
			e, err := Parse([]byte(in))
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if e.Severity != tt.want {
				t.Errorf("Parse(…).Severity = %q, want %q", e.Severity, tt.want)
			}
		})
	}
}
