package vulndb

import (
	"encoding/json"
	"math"
	"strings"
)

// severity returns the qualitative rating of an entry: the one in
// database_specific.severity when it is a known word, else the rating of
// the first CVSS v3 vector that scores, else "". A rating that cannot be
// read is no reason to refuse an advisory, so nothing here is an error.
func severity(dbSpecific json.RawMessage, sev []osvSeverity) string {
	var ds struct {
		Severity any `json:"severity"`
	}
	if len(dbSpecific) > 0 && json.Unmarshal(dbSpecific, &ds) == nil {
		if s, ok := ds.Severity.(string); ok {
			switch strings.ToUpper(s) {
			case "CRITICAL":
				return "critical"
			case "HIGH":
				return "high"
			case "MODERATE", "MEDIUM":
				return "medium"
			case "LOW":
				return "low"
			}
		}
	}
	for _, s := range sev {
		if s.Type != "CVSS_V3" {
			continue // CVSS v4 and v2 are not scored here
		}
		if score, ok := cvss3Score(s.Score); ok {
			return rating(score)
		}
	}
	return ""
}

// rating is the CVSS v3 qualitative severity rating scale; 0 is "none",
// which is reported as "".
func rating(score float64) string {
	switch {
	case score >= 9:
		return "critical"
	case score >= 7:
		return "high"
	case score >= 4:
		return "medium"
	case score > 0:
		return "low"
	}
	return ""
}

// cvss3Score computes the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") as the CVSS v3.1
// specification, section 7.1, defines it. Temporal and environmental
// metrics are allowed and ignored; ok is false when a base metric is
// missing, repeated or has an unknown value.
func cvss3Score(vector string) (score float64, ok bool) {
	rest, found := strings.CutPrefix(vector, "CVSS:3.1/")
	if !found {
		if rest, found = strings.CutPrefix(vector, "CVSS:3.0/"); !found {
			return 0, false
		}
	}
	weights := map[string]map[string]float64{
		"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
		"AC": {"L": 0.77, "H": 0.44},
		"PR": {"N": 0.85, "L": 0.62, "H": 0.27}, // scope unchanged; see below
		"UI": {"N": 0.85, "R": 0.62},
		"S":  {"U": 0, "C": 1},
		"C":  {"H": 0.56, "L": 0.22, "N": 0},
		"I":  {"H": 0.56, "L": 0.22, "N": 0},
		"A":  {"H": 0.56, "L": 0.22, "N": 0},
	}
	got := make(map[string]string, len(weights))
	for part := range strings.SplitSeq(rest, "/") {
		k, v, found := strings.Cut(part, ":")
		if !found {
			return 0, false
		}
		if _, base := weights[k]; !base {
			continue
		}
		if _, dup := got[k]; dup {
			return 0, false
		}
		if _, known := weights[k][v]; !known {
			return 0, false
		}
		got[k] = v
	}
	if len(got) != len(weights) {
		return 0, false
	}
	w := func(k string) float64 { return weights[k][got[k]] }
	changed := got["S"] == "C"
	pr := w("PR")
	if changed {
		switch got["PR"] {
		case "L":
			pr = 0.68
		case "H":
			pr = 0.5
		}
	}
	iss := 1 - (1-w("C"))*(1-w("I"))*(1-w("A"))
	var impact float64
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	} else {
		impact = 6.42 * iss
	}
	if impact <= 0 {
		return 0, true
	}
	exploitability := 8.22 * w("AV") * w("AC") * pr * w("UI")
	if changed {
		return roundUp(math.Min(1.08*(impact+exploitability), 10)), true
	}
	return roundUp(math.Min(impact+exploitability, 10)), true
}

// roundUp is the Roundup function of CVSS v3.1 (Appendix A): the smallest
// number with one decimal place that is not less than x, computed without
// the floating-point surprises of math.Ceil(x*10)/10.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}
