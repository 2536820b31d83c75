package admin

import (
	"net/http"

	"warden/internal/deploy"
)

func (a *API) listCanaries(w http.ResponseWriter, r *http.Request) {
	out := []deploy.CanaryStatus{}
	for _, c := range a.cfg.Deploy.Canaries() {
		st := c.Status()
		if ns := r.URL.Query().Get("namespace"); ns != "" && st.Namespace != ns {
			continue
		}
		if name := r.URL.Query().Get("name"); name != "" && st.Name != name {
			continue
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, out)
}

// endCanary promotes or aborts a function's canary by hand.
func (a *API) endCanary(promote bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reason := "aborted by " + origin(r).Actor
		if promote {
			reason = "promoted by " + origin(r).Actor
		}
		st, err := a.cfg.Deploy.EndCanary(r.Context(), r.PathValue("namespace"), r.PathValue("name"), promote, reason, origin(r))
		if err != nil {
			a.deployError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	}
}
