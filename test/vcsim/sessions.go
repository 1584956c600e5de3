package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// The simulator keeps its sessions in an unexported map; a Session's view of the
// SessionManager (what a client's RetrieveProperties of sessionList reads) copies
// that map under its lock, so reading it through an empty Session is exact and
// needs no SOAP round trip.
func simulatorSessions() []types.UserSession {
	view := simulator.Session{Registry: simulator.NewRegistry()}
	sm, ok := view.Get(simulator.Map.SessionManager().Reference()).(*simulator.SessionManager)
	if !ok {
		return nil
	}
	return sm.SessionList
}

// liveSessionKeys lists the keys of every session logged in on the simulator,
// except the injector's own (which no client can see or end).
func (in *injector) liveSessionKeys() []string {
	var keys []string
	for _, s := range simulatorSessions() {
		if s.Key != in.internalKey {
			keys = append(keys, s.Key)
		}
	}
	return keys
}

// sessionLive reports whether key names a session logged in on the simulator.
func sessionLive(key string) bool {
	if key == "" {
		return false
	}
	for _, s := range simulatorSessions() {
		if s.Key == key {
			return true
		}
	}
	return false
}

// callerSession is the session key a request's cookie names ("" without one).
func callerSession(r *http.Request) string {
	if c, err := r.Cookie(sessionCookie); err == nil {
		return c.Value
	}
	return ""
}

// openInternalSession logs the injector in once, in process, so work it does on a
// client's behalf after that client's session ended (a delayed task finishing after
// a logout) still runs, as it does on vCenter. liveSessions never counts it.
func (in *injector) openInternalSession(username, password string) error {
	sm := simulator.Map.SessionManager().Reference()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Login xmlns="urn:vim25">`)
	fmt.Fprintf(&b, `<_this type="%s">%s</_this><userName>`, sm.Type, sm.Value)
	_ = xml.EscapeText(&b, []byte(username))
	b.WriteString(`</userName><password>`)
	_ = xml.EscapeText(&b, []byte(password))
	b.WriteString(`</password></Login></soapenv:Body></soapenv:Envelope>`)
	req := httptest.NewRequest(http.MethodPost, "/sdk", strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "text/xml")
	rec := httptest.NewRecorder()
	in.inner.ServeHTTP(rec, req)
	for _, c := range (&http.Response{Header: rec.Header()}).Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			in.internalKey = c.Value
			return nil
		}
	}
	return errors.New("the simulator gave the injector's own login no session cookie")
}

// logout ends one session through the simulator's own SessionManager.Logout.
func (in *injector) logout(key string) bool {
	sm := simulator.Map.SessionManager().Reference()
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Logout xmlns="urn:vim25"><_this type="%s">%s</_this></Logout></soapenv:Body></soapenv:Envelope>`, sm.Type, sm.Value)
	req := httptest.NewRequest(http.MethodPost, "/sdk", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: key})
	rec := httptest.NewRecorder()
	in.inner.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

// expireSessions logs out every session logged in on the simulator (the
// injector's own excepted), so the next call on any of them gets
// NotAuthenticated exactly as from a vCenter whose sessions timed out.
func (in *injector) expireSessions() int {
	in.mu.Lock()
	in.sessions = map[string]bool{}
	in.mu.Unlock()
	n := 0
	for _, k := range in.liveSessionKeys() {
		if in.logout(k) {
			n++
		}
	}
	in.mu.Lock()
	in.stats.Expired += n
	in.mu.Unlock()
	return n
}

// notAuthenticated is the fault vCenter (and the simulator) answers a call made
// without a live session with.
func notAuthenticated(this types.ManagedObjectReference) *types.NotAuthenticated {
	return &types.NotAuthenticated{NoPermission: types.NoPermission{Object: this, PrivilegeId: "System.View"}}
}

// needsSession names the methods the simulator would serve without a session but
// vCenter answers with NotAuthenticated (the paging ones are the harness's own).
func needsSession(method string) bool {
	switch method {
	case "RetrieveProperties", "RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "CancelRetrievePropertiesEx":
		return true
	}
	return false
}
