package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"warden/internal/events"
)

func eventsCmd(g *globals, stdout io.Writer) *cobra.Command {
	var typ, since string
	var follow bool
	var limit int
	c := &cobra.Command{
		Use: "events [--type T] [--since DUR] [--follow]", Short: "Show the security event log", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{}
			if typ != "" {
				q.Set("type", typ)
			}
			if since != "" {
				if _, err := time.ParseDuration(since); err != nil {
					if _, err := time.Parse(time.RFC3339, since); err != nil {
						return usageErr("--since: want a duration like 1h or an RFC 3339 time")
					}
				}
				q.Set("since", since)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			cl, err := g.newClient()
			if err != nil {
				return err
			}
			if !follow {
				ctx, cancel := timeout(requestTimeout)
				defer cancel()
				var evs []events.Event
				if err := cl.request(ctx, http.MethodGet, "/v1/events?"+q.Encode(), "", nil, &evs); err != nil {
					return err
				}
				if g.json {
					for _, e := range evs {
						json.NewEncoder(stdout).Encode(e)
					}
					return nil
				}
				for _, e := range evs {
					printEvent(stdout, e)
				}
				return nil
			}
			q.Set("follow", "true")
			ctx, stop := signalContext()
			defer stop()
			resp, err := cl.send(ctx, http.MethodGet, "/v1/events?"+q.Encode(), "", nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if g.json {
					fmt.Fprintln(stdout, sc.Text())
					continue
				}
				var e events.Event
				if json.Unmarshal(sc.Bytes(), &e) == nil {
					printEvent(stdout, e)
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			if err := sc.Err(); err != nil && err != context.Canceled {
				return fmt.Errorf("event stream: %v", err)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&typ, "type", "", "only this type, or a prefix ending in '.' (e.g. limit.)")
	f.StringVar(&since, "since", "", "only events newer than this duration (e.g. 1h) or RFC 3339 time")
	f.BoolVarP(&follow, "follow", "f", false, "keep streaming new events")
	f.IntVar(&limit, "limit", 0, "at most this many events")
	return c
}

func printEvent(w io.Writer, e events.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-20s %-8s", e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Type, e.Outcome)
	if e.Function != "" {
		fmt.Fprintf(&b, " fn=%s/%s", e.Namespace, e.Function)
		if e.Version > 0 {
			fmt.Fprintf(&b, "@%d", e.Version)
		}
	}
	if e.Actor != "" {
		fmt.Fprintf(&b, " actor=%q", e.Actor)
	}
	if e.SourceIP != "" {
		fmt.Fprintf(&b, " ip=%s", e.SourceIP)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", e.Reason)
	}
	for _, k := range slices.Sorted(maps.Keys(e.Labels)) {
		if k != "route" || e.Type != events.TypeAdminAuth { // every admin call has one: noise
			fmt.Fprintf(&b, " %s=%q", k, e.Labels[k])
		}
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " req=%s", e.RequestID)
	}
	fmt.Fprintln(w, b.String())
}
