package server_test

import (
	"strconv"

	"warden/internal/events"
)

// occurrences counts what evs stand for: an aggregate event stands for the
// repeats it counts.
func occurrences(evs []events.Event) int {
	n := 0
	for _, e := range evs {
		if c, err := strconv.Atoi(e.Labels[events.LabelAggregateCount]); err == nil {
			n += c
		} else {
			n++
		}
	}
	return n
}
