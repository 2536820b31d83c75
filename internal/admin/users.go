package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"warden/internal/auth"
	"warden/internal/events"
	"warden/internal/problem"
	"warden/internal/reqid"
	"warden/internal/secheaders"
	"warden/internal/store"
)

// Event types of operator accounts.
const (
	TypeUserCreate    = "user.create"
	TypeUserDelete    = "user.delete"
	TypeUserLogin     = "user.login"      // success or failure, with the reason
	TypeUserMFAEnroll = "user.mfa_enroll" // labels stage=start|confirm
	TypeUserMFAReset  = "user.mfa_reset"
	TypeTokenRevoke   = "token.revoke" // the bootstrap token was revoked
)

// bootstrapName is the name of the bootstrap admin credential.
const bootstrapName = auth.ReservedUserName

// verify authenticates a bearer credential: a session token or an admin token.
func (a *API) verify(ctx context.Context, token string) (auth.Principal, string, error) {
	if auth.LooksLikeSession(token) {
		if a.cfg.Users == nil {
			return auth.Principal{}, "", auth.ErrInvalidCredential
		}
		return a.cfg.Users.VerifySession(ctx, token)
	}
	return a.cfg.Auth.Verify(ctx, token)
}

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	TOTP     string `json:"totp,omitempty"`
}

// LoginResponse carries a new session token, shown once.
type LoginResponse struct {
	Token     string    `json:"token"`
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Role      string    `json:"role"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// UserRequest creates a user.
type UserRequest struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password"`
}

// UserInfo describes a user, never their secrets.
type UserInfo struct {
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	MFAEnrolled    bool       `json:"mfaEnrolled"`
	MFAPending     bool       `json:"mfaPending,omitempty"`
	FailedAttempts int        `json:"failedAttempts"`
	LockedUntil    *time.Time `json:"lockedUntil,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// TOTPEnrollment is the answer that starts an enrollment; URI carries the
// secret and is shown once.
type TOTPEnrollment struct {
	User string `json:"user"`
	URI  string `json:"uri"`
}

// TOTPVerifyRequest confirms an enrollment.
type TOTPVerifyRequest struct {
	Code string `json:"code"`
}

func userInfo(u store.User) UserInfo {
	return UserInfo{Name: u.Name, Role: u.Role, MFAEnrolled: u.MFAEnrolled, MFAPending: !u.MFAEnrolled && u.TOTPSecret != "",
		FailedAttempts: u.FailedAttempts, LockedUntil: u.LockedUntil, CreatedAt: u.CreatedAt}
}

// decodeStrict reads a small JSON body, refusing unknown fields.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<10))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (a *API) userEvent(r *http.Request, typ, outcome, reason, user string, labels map[string]string) {
	if labels == nil {
		labels = map[string]string{}
	}
	if user != "" {
		labels["target.user"] = user
	}
	o := origin(r)
	a.cfg.Events.Emit(events.Event{Type: typ, Outcome: outcome, Reason: reason, Actor: o.Actor,
		SourceIP: o.SourceIP, RequestID: o.RequestID, Labels: labels})
}

// login exchanges credentials for a session. Unknown users, wrong passwords,
// wrong codes and right passwords of users whose role needs MFA they have not
// enrolled get the same answer; a locked name gets 429 and Retry-After.
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	ev := events.Event{Type: TypeUserLogin, SourceIP: secheaders.ClientIP(r), RequestID: reqid.From(r.Context())}
	var in LoginRequest
	if err := decodeStrict(r, &in); err != nil || in.User == "" || in.Password == "" {
		problem.Write(w, r, http.StatusBadRequest, `body must be {"user": ..., "password": ..., "totp": "123456"}`)
		return
	}
	if auth.UserNameRE.MatchString(in.User) {
		ev.Actor = in.User // never an arbitrary string: it could be a mistyped password
	}
	if a.cfg.Users == nil {
		problem.Write(w, r, http.StatusServiceUnavailable, "logins are not configured")
		return
	}
	s, err := a.cfg.Users.Login(r.Context(), in.User, in.Password, in.TOTP)
	var le *auth.LoginError
	switch {
	case err == nil:
		ev.Outcome, ev.Labels = events.OutcomeSuccess, map[string]string{"session.id": s.ID, "user.role": s.Role}
		a.cfg.Events.Emit(ev)
		writeJSON(w, http.StatusOK, LoginResponse{Token: s.Token, ID: s.ID, User: s.User, Role: s.Role, ExpiresAt: s.ExpiresAt})
	case errors.As(err, &le):
		ev.Outcome, ev.Reason = events.OutcomeFailure, le.Reason
		if le.RetryAfter > 0 {
			ev.Labels = map[string]string{"locked": "true", "retry_after": strconv.Itoa(retrySeconds(le.RetryAfter))}
		}
		a.cfg.Events.Emit(ev)
		switch {
		case le.RetryAfter > 0:
			w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(le.RetryAfter)))
			problem.Write(w, r, http.StatusTooManyRequests, "too many failed logins; try again later")
		default:
			problem.Write(w, r, http.StatusUnauthorized, "invalid user, password or code")
		}
	default:
		ev.Outcome, ev.Reason = events.OutcomeFailure, "credential check failed"
		a.cfg.Events.Emit(ev)
		a.log.Error("login check failed", "request_id", ev.RequestID, "err", err)
		problem.Write(w, r, http.StatusServiceUnavailable, "credentials cannot be checked right now")
	}
}

func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var in UserRequest
	if err := decodeStrict(r, &in); err != nil {
		problem.Write(w, r, http.StatusBadRequest, `body must be {"name": ..., "role": ..., "password": ...}`)
		return
	}
	if _, ok := roles[in.Role]; !ok {
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "invalid user request",
			Errors: []string{fmt.Sprintf("role: one of %v", Roles())}})
		return
	}
	u, err := a.cfg.Users.Create(r.Context(), in.Name, in.Role, in.Password)
	switch {
	case errors.Is(err, auth.ErrUserInvalid):
		// The message is warden's own and never holds the password.
		problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest, Detail: "invalid user request", Errors: []string{err.Error()}})
		return
	case errors.Is(err, auth.ErrUserExists):
		a.userEvent(r, TypeUserCreate, events.OutcomeFailure, "user exists", in.Name, nil)
		problem.Write(w, r, http.StatusConflict, "a user with this name exists")
		return
	case err != nil:
		a.internal(w, r, "create user", err)
		return
	}
	a.userEvent(r, TypeUserCreate, events.OutcomeSuccess, "", u.Name, map[string]string{"user.role": u.Role})
	writeJSON(w, http.StatusCreated, userInfo(u))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	us, err := a.cfg.Store.ListUsers(r.Context())
	if err != nil {
		a.internal(w, r, "list users", err)
		return
	}
	out := []UserInfo{}
	for _, u := range us {
		out = append(out, userInfo(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// lastAdmin reports whether removing name's MFA admin standing would leave
// nobody able to administer: it is the only admin user with TOTP enrolled
// and the bootstrap token is revoked.
func (a *API) lastAdmin(ctx context.Context, name string) (bool, error) {
	us, err := a.cfg.Store.ListUsers(ctx)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(us, func(u store.User) bool { return u.Name == name && u.Role == auth.RoleAdmin && u.MFAEnrolled }) {
		return false, nil
	}
	others := slices.ContainsFunc(us, func(u store.User) bool { return u.Name != name && u.Role == auth.RoleAdmin && u.MFAEnrolled })
	if others {
		return false, nil
	}
	boot, err := a.activeBootstrap(ctx)
	return len(boot) == 0, err
}

func (a *API) activeBootstrap(ctx context.Context) ([]store.Credential, error) {
	creds, err := a.cfg.Store.ListCredentials(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Credential
	for _, c := range creds {
		if c.Kind == store.KindAdmin && c.Name == bootstrapName && c.RevokedAt == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := a.cfg.Store.User(r.Context(), name); errors.Is(err, store.ErrNotFound) {
		problem.Write(w, r, http.StatusNotFound, "no such user")
		return
	} else if err != nil {
		a.internal(w, r, "delete user", err)
		return
	}
	if last, err := a.lastAdmin(r.Context(), name); err != nil {
		a.internal(w, r, "delete user", err)
		return
	} else if last {
		a.userEvent(r, TypeUserDelete, events.OutcomeDenied, "last admin with MFA", name, nil)
		problem.Write(w, r, http.StatusConflict, "this is the last admin user with MFA and the bootstrap token is revoked")
		return
	}
	err := a.cfg.Store.DeleteUser(r.Context(), name)
	if errors.Is(err, store.ErrNotFound) {
		problem.Write(w, r, http.StatusNotFound, "no such user")
		return
	}
	if err != nil {
		a.internal(w, r, "delete user", err)
		return
	}
	// Sessions of a deleted user are refused anyway; revoke them so that
	// listings say so.
	n, err := a.cfg.Users.RevokeSessions(r.Context(), name)
	if err != nil {
		a.log.Error("revoke sessions of a deleted user", "request_id", reqid.From(r.Context()), "err", err)
	}
	a.userEvent(r, TypeUserDelete, events.OutcomeSuccess, "", name, map[string]string{"sessions.revoked": strconv.Itoa(n)})
	w.WriteHeader(http.StatusNoContent)
}

// mayManageMFA: anyone with PermUsers, or a user acting on their own
// account with their own session.
func mayManageMFA(r *http.Request, name string) bool {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	if allowed(p.Role, PermUsers) {
		return true
	}
	tok, _ := bearer(r)
	return auth.IsSessionToken(tok) && p.Name == name
}

func (a *API) startTOTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !mayManageMFA(r, name) {
		a.userEvent(r, TypeUserMFAEnroll, events.OutcomeDenied, "not the caller's account", name, map[string]string{"stage": "start"})
		problem.Write(w, r, http.StatusForbidden, "you may enroll TOTP for your own account only")
		return
	}
	uri, err := a.cfg.Users.StartTOTP(r.Context(), name)
	switch {
	case errors.Is(err, auth.ErrNoSuchUser):
		problem.Write(w, r, http.StatusNotFound, "no such user")
		return
	case errors.Is(err, auth.ErrMFAEnrolled):
		problem.Write(w, r, http.StatusConflict, "TOTP is already enrolled; an administrator can remove it first")
		return
	case err != nil:
		a.internal(w, r, "start TOTP enrollment", err)
		return
	}
	a.userEvent(r, TypeUserMFAEnroll, events.OutcomeSuccess, "enrollment started", name, map[string]string{"stage": "start"})
	writeJSON(w, http.StatusOK, TOTPEnrollment{User: name, URI: uri})
}

func (a *API) verifyTOTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	labels := func() map[string]string { return map[string]string{"stage": "confirm"} }
	if !mayManageMFA(r, name) {
		a.userEvent(r, TypeUserMFAEnroll, events.OutcomeDenied, "not the caller's account", name, labels())
		problem.Write(w, r, http.StatusForbidden, "you may enroll TOTP for your own account only")
		return
	}
	var in TOTPVerifyRequest
	if err := decodeStrict(r, &in); err != nil {
		problem.Write(w, r, http.StatusBadRequest, `body must be {"code": "123456"}`)
		return
	}
	err := a.cfg.Users.ConfirmTOTP(r.Context(), name, in.Code)
	switch {
	case err == nil:
		a.userEvent(r, TypeUserMFAEnroll, events.OutcomeSuccess, "enrolled", name, labels())
		writeJSON(w, http.StatusOK, map[string]any{"user": name, "mfaEnrolled": true})
	case errors.Is(err, auth.ErrNoSuchUser):
		problem.Write(w, r, http.StatusNotFound, "no such user")
	case errors.Is(err, auth.ErrMFAEnrolled):
		problem.Write(w, r, http.StatusConflict, "TOTP is already enrolled")
	case errors.Is(err, auth.ErrNoPending):
		problem.Write(w, r, http.StatusConflict, "no TOTP enrollment is pending: start one first")
	case errors.Is(err, auth.ErrBadCode):
		a.userEvent(r, TypeUserMFAEnroll, events.OutcomeFailure, "wrong code", name, labels())
		problem.Write(w, r, http.StatusBadRequest, "the code does not match; check the device's clock and try the next code")
	default:
		a.internal(w, r, "confirm TOTP enrollment", err)
	}
}

func (a *API) resetTOTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if last, err := a.lastAdmin(r.Context(), name); err != nil {
		a.internal(w, r, "reset TOTP", err)
		return
	} else if last {
		a.userEvent(r, TypeUserMFAReset, events.OutcomeDenied, "last admin with MFA", name, nil)
		problem.Write(w, r, http.StatusConflict, "this is the last admin user with MFA and the bootstrap token is revoked")
		return
	}
	err := a.cfg.Users.ResetTOTP(r.Context(), name)
	if errors.Is(err, auth.ErrNoSuchUser) {
		problem.Write(w, r, http.StatusNotFound, "no such user")
		return
	}
	if err != nil {
		a.internal(w, r, "reset TOTP", err)
		return
	}
	a.userEvent(r, TypeUserMFAReset, events.OutcomeSuccess, "", name, nil)
	w.WriteHeader(http.StatusNoContent)
}

// revokeBootstrap revokes the bootstrap admin token, but only once an admin
// user with TOTP enrolled exists, so that the API is never left without an
// administrator.
func (a *API) revokeBootstrap(w http.ResponseWriter, r *http.Request) {
	us, err := a.cfg.Store.ListUsers(r.Context())
	if err != nil {
		a.internal(w, r, "revoke bootstrap token", err)
		return
	}
	if !slices.ContainsFunc(us, func(u store.User) bool { return u.Role == auth.RoleAdmin && u.MFAEnrolled }) {
		a.userEvent(r, TypeTokenRevoke, events.OutcomeDenied, "no admin user with MFA", "", map[string]string{"token.name": bootstrapName})
		problem.Write(w, r, http.StatusConflict, "create an admin user and enroll its TOTP before revoking the bootstrap token")
		return
	}
	boot, err := a.activeBootstrap(r.Context())
	if err != nil {
		a.internal(w, r, "revoke bootstrap token", err)
		return
	}
	if len(boot) == 0 {
		problem.Write(w, r, http.StatusNotFound, "the bootstrap token is already revoked")
		return
	}
	for _, c := range boot {
		if err := a.cfg.Store.RevokeCredential(r.Context(), c.ID, time.Now()); err != nil {
			a.internal(w, r, "revoke bootstrap token", err)
			return
		}
		a.userEvent(r, TypeTokenRevoke, events.OutcomeSuccess, "", "", map[string]string{"token.name": bootstrapName, "token.id": c.ID})
	}
	w.WriteHeader(http.StatusNoContent)
}
