package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"

	"warden/internal/auth"
	"warden/internal/deploy"
	"warden/internal/events"
	"warden/internal/problem"
	"warden/internal/store"
)

// DecisionRequest is the optional body of an approval or a rejection.
type DecisionRequest struct {
	Comment string `json:"comment,omitempty"`
}

func (a *API) listApprovals(w http.ResponseWriter, r *http.Request) {
	vs, err := a.cfg.Deploy.Pending(r.Context())
	if err != nil {
		a.internal(w, r, "pending versions", err)
		return
	}
	if vs == nil {
		vs = []store.Version{}
	}
	writeJSON(w, http.StatusOK, vs)
}

// decide approves or rejects a pending version. The bootstrap token decides
// nothing once an admin user exists: a second person must be a person.
func (a *API) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		version, err := strconv.Atoi(r.PathValue("version"))
		if err != nil || version <= 0 {
			problem.Write(w, r, http.StatusBadRequest, "version must be a positive number")
			return
		}
		var in DecisionRequest
		if r.ContentLength != 0 {
			dec := json.NewDecoder(io.LimitReader(r.Body, 8<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil && err != io.EOF {
				problem.Write(w, r, http.StatusBadRequest, `body must be {"comment": "..."} or empty`)
				return
			}
		}
		o := origin(r)
		p, _ := r.Context().Value(principalKey{}).(auth.Principal)
		if p.Name == auth.ReservedUserName {
			us, err := a.cfg.Store.ListUsers(r.Context())
			if err != nil {
				a.internal(w, r, "approval", err)
				return
			}
			if slices.ContainsFunc(us, func(u store.User) bool { return u.Role == auth.RoleAdmin }) {
				verb := "reject"
				if approve {
					verb = "approve"
				}
				a.cfg.Events.Emit(events.Event{Type: deploy.TypeDeployApproval, Outcome: events.OutcomeDenied, Actor: o.Actor, SourceIP: o.SourceIP,
					RequestID: o.RequestID, Namespace: ns, Function: name, Version: version, Reason: "the bootstrap token cannot " + verb + " once an admin user exists",
					Labels: map[string]string{"decision": verb}})
				problem.WriteDetails(w, r, problem.Details{Status: http.StatusForbidden, Step: deploy.StepApproval,
					Detail: "the bootstrap token cannot " + verb + " versions once an admin user exists: log in as a person (warden login)"})
				return
			}
		}
		if approve {
			res, err := a.cfg.Deploy.Approve(r.Context(), ns, name, version, o, in.Comment)
			if err != nil {
				a.deployError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, res)
			return
		}
		v, err := a.cfg.Deploy.Reject(r.Context(), ns, name, version, o, in.Comment)
		if err != nil {
			a.deployError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}
