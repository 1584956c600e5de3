package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// Rule kinds. SOAP kinds match POSTs to /sdk by method name; cutUpload matches
// datastore uploads (PUT/POST under /folder/ or /nfc/).
const (
	kindDelay          = "delay"          // sleep ms before serving
	kindFault          = "fault"          // answer with a SOAP fault of the named vim type
	kindReset          = "reset"          // reset the TCP connection (before or after serving)
	kindHTTPStatus     = "httpStatus"     // answer with a bare HTTP status (e.g. 503)
	kindExpireSessions = "expireSessions" // log every known session out, then serve
	kindTaskError      = "taskError"      // answer a *_Task call with a task that ends in the named fault
	kindCutUpload      = "cutUpload"      // store afterBytes of an upload, then reset the connection
	kindTaskDelay      = "taskDelay"      // the task of a *_Task call stays running for ms before it ends
	kindLateNetwork    = "lateNetwork"    // an AddPortGroup that makes a new Network lists it only ms later
)

const sessionCookie = "vmware_soap_session"

// ruleSpec is the JSON a test posts to /rules (or passes with --fault).
type ruleSpec struct {
	Kind       string          `json:"kind"`
	Method     string          `json:"method,omitempty"`
	Nth        int             `json:"nth,omitempty"`
	Times      int             `json:"times,omitempty"`
	Ms         int             `json:"ms,omitempty"`
	Fault      string          `json:"fault,omitempty"`
	Message    string          `json:"message,omitempty"`
	Fields     json.RawMessage `json:"fields,omitempty"`
	Phase      string          `json:"phase,omitempty"`
	Status     int             `json:"status,omitempty"`
	AfterBytes int64           `json:"afterBytes,omitempty"`
	Path       string          `json:"path,omitempty"`
	// Args narrows a SOAP rule to calls whose decoded arguments have these values:
	// dotted element paths ("_this", "portgrp.name") to their text (see args.go).
	Args map[string]string `json:"args,omitempty"`
}

type rule struct {
	ID int `json:"id"`
	ruleSpec
	Seen  int `json:"seen"`
	Fired int `json:"fired"`

	fault types.BaseMethodFault
}

func (r *rule) validate() error {
	if r.Nth == 0 {
		r.Nth = 1
	}
	if r.Times == 0 {
		r.Times = 1
	}
	if r.Nth < 0 || r.Times < -1 {
		return fmt.Errorf("nth must be 1 or more and times 1 or more (or -1 for always)")
	}
	if r.Method == "*" {
		r.Method = ""
	}
	if err := validateArgs(r.Args); err != nil {
		return err
	}
	if len(r.Args) > 0 && r.Kind == kindCutUpload {
		return fmt.Errorf("cutUpload: args apply to SOAP calls only")
	}
	switch r.Kind {
	case kindDelay:
		if r.Ms <= 0 {
			return fmt.Errorf("delay: ms must be more than 0")
		}
	case kindFault, kindTaskError:
		f, err := newFault(r.Fault, r.Fields)
		if err != nil {
			return err
		}
		r.fault = f
		if r.Kind == kindTaskError && !strings.HasSuffix(r.Method, "_Task") {
			return fmt.Errorf("taskError: method must name a *_Task method, got %q", r.Method)
		}
	case kindReset:
		if r.Phase == "" {
			r.Phase = "before"
		}
		if r.Phase != "before" && r.Phase != "after" {
			return fmt.Errorf("reset: phase must be before or after, got %q", r.Phase)
		}
	case kindHTTPStatus:
		if r.Status < 400 || r.Status > 599 {
			return fmt.Errorf("httpStatus: status must be 400-599, got %d", r.Status)
		}
	case kindExpireSessions:
	case kindTaskDelay:
		if r.Ms <= 0 {
			return fmt.Errorf("taskDelay: ms must be more than 0")
		}
		if !strings.HasSuffix(r.Method, "_Task") {
			return fmt.Errorf("taskDelay: method must name a *_Task method, got %q", r.Method)
		}
	case kindLateNetwork:
		if r.Ms <= 0 {
			return fmt.Errorf("lateNetwork: ms must be more than 0")
		}
		if r.Method == "" {
			r.Method = "AddPortGroup"
		}
		if r.Method != "AddPortGroup" {
			return fmt.Errorf("lateNetwork: applies to AddPortGroup, got %q", r.Method)
		}
	case kindCutUpload:
		if r.AfterBytes < 0 {
			return fmt.Errorf("cutUpload: afterBytes must be 0 or more")
		}
	default:
		return fmt.Errorf("kind %q: want one of delay, fault, reset, httpStatus, expireSessions, taskError, taskDelay, lateNetwork, cutUpload", r.Kind)
	}
	return nil
}

// newFault makes a vim fault value by type name, with optional fields from JSON
// (e.g. {"invalidProperty":"spec.name"} for InvalidArgument).
func newFault(name string, fields json.RawMessage) (types.BaseMethodFault, error) {
	if name == "" {
		return nil, errors.New("fault: name a vim fault type, e.g. InvalidArgument")
	}
	typ, ok := types.TypeFunc()(name)
	if !ok && strings.HasSuffix(name, "Fault") {
		// Accept the detail element's name too (InvalidArgumentFault).
		typ, ok = types.TypeFunc()(strings.TrimSuffix(name, "Fault"))
	}
	if !ok {
		return nil, fmt.Errorf("fault %q: not a vim25 type", name)
	}
	v := reflect.New(typ)
	f, ok := v.Interface().(types.BaseMethodFault)
	if !ok {
		return nil, fmt.Errorf("fault %q: not a MethodFault", name)
	}
	if len(fields) > 0 {
		if err := json.Unmarshal(fields, v.Interface()); err != nil {
			return nil, fmt.Errorf("fault %q fields: %v", name, err)
		}
	}
	return f, nil
}

type stats struct {
	SOAPRequests int            `json:"soapRequests"`
	Methods      map[string]int `json:"methods"`
	SOAPActions  map[string]int `json:"soapActions"`
	UploadBytes  int64          `json:"uploadBytes"`
	Uploads      int            `json:"uploads"`
	Sessions     int            `json:"knownSessions"`
	Expired      int            `json:"expiredSessions"`
	// Connections counts TCP connections the SDK server accepted (TLS or plain).
	Connections int `json:"connections"`
}

func newStats() stats {
	return stats{Methods: map[string]int{}, SOAPActions: map[string]int{}}
}

// injector wraps the simulator's handler: it sees every request first, applies
// the rules that match, and counts what fired.
type injector struct {
	inner http.Handler

	mu       sync.Mutex
	nextID   int
	rules    []*rule
	stats    stats
	sessions map[string]bool
	pager    *pager
	// internalKey is the injector's own session (see openInternalSession).
	internalKey string
	// schemaStrict refuses requests whose elements are out of schema order (order.go).
	schemaStrict bool
	// nfc holds the import leases the harness serves itself (nfc.go).
	nfc *nfcLeases
}

func newInjector(inner http.Handler) *injector {
	return &injector{inner: inner, stats: newStats(), sessions: map[string]bool{}, pager: newPager(), nfc: newNFCLeases(100 * time.Millisecond)}
}

func (in *injector) addRuleJSON(data []byte) ([]*rule, error) {
	data = bytes.TrimSpace(data)
	var specs []ruleSpec
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &specs); err != nil {
			return nil, err
		}
	} else {
		var s ruleSpec
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	var added []*rule
	for _, s := range specs {
		r := &rule{ruleSpec: s}
		if err := r.validate(); err != nil {
			return nil, err
		}
		added = append(added, r)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range added {
		in.nextID++
		r.ID = in.nextID
		in.rules = append(in.rules, r)
	}
	return added, nil
}

// soapCall is what the injector reads of a SOAP request.
type soapCall struct {
	method string
	this   types.ManagedObjectReference
	// req is the decoded request struct (e.g. *types.AddPortGroup), nil if the
	// body does not decode.
	req interface{}
}

// parseSOAP finds the method element (the first child of Body) and its _this.
func parseSOAP(body []byte) soapCall {
	var c soapCall
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return c
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case !inBody && se.Name.Local == "Body":
			inBody = true
		case inBody && c.method == "":
			c.method = se.Name.Local
		case c.method != "" && se.Name.Local == "_this":
			for _, a := range se.Attr {
				if a.Name.Local == "type" {
					c.this.Type = a.Value
				}
			}
			var v string
			if err := dec.DecodeElement(&v, &se); err == nil {
				c.this.Value = strings.TrimSpace(v)
			}
			return c
		default:
			if c.method != "" {
				return c
			}
		}
	}
}

func isUpload(r *http.Request) bool {
	return (r.Method == http.MethodPut || r.Method == http.MethodPost) &&
		(strings.HasPrefix(r.URL.Path, folderPrefix) || strings.HasPrefix(r.URL.Path, nfcPrefix))
}

// match counts the request against every rule and returns those that fire now.
func (in *injector) match(soap bool, call soapCall, path string) []rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	var firing []rule
	for _, r := range in.rules {
		if soap != (r.Kind != kindCutUpload) {
			continue
		}
		if soap && r.Method != "" && r.Method != call.method {
			continue
		}
		if soap && len(r.Args) > 0 && !argsMatch(call.req, r.Args) {
			continue
		}
		if !soap && r.Path != "" && !strings.HasPrefix(path, r.Path) {
			continue
		}
		r.Seen++
		if r.Seen >= r.Nth && (r.Times < 0 || r.Fired < r.Times) {
			r.Fired++
			firing = append(firing, *r)
		}
	}
	return firing
}

func (in *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		in.noteSession(c.Value)
	}
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sdk"):
		in.serveSOAP(w, r)
	case r.Method == http.MethodPost && r.URL.Path == pbmPath:
		in.servePBM(w, r) // pbm.go
	case strings.HasPrefix(r.URL.Path, folderPrefix) && in.serveFolder(w, r):
	case isUpload(r):
		in.serveUpload(w, r)
	default:
		in.inner.ServeHTTP(w, r)
	}
}

// readCall reads a SOAP request (/sdk or /pbm), puts its body back for whoever serves it
// next, and counts it in the per-method statistics; false when the body cannot be read.
func (in *injector) readCall(r *http.Request) (soapCall, []byte, bool) {
	body, err := ioutil.ReadAll(r.Body)
	if err != nil {
		return soapCall{}, nil, false
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))
	call := parseSOAP(body)
	in.mu.Lock()
	in.stats.SOAPRequests++
	in.stats.Methods[call.method]++
	in.stats.SOAPActions[strings.Trim(r.Header.Get("SOAPAction"), `"`)]++
	in.mu.Unlock()
	return call, body, true
}

func (in *injector) serveSOAP(w http.ResponseWriter, r *http.Request) {
	call, body, ok := in.readCall(r)
	if !ok {
		return
	}
	call.req = decodeRequest(body)

	// vCenter deserializes a request before it acts on it, so a misordered one fails first.
	if in.schemaStrict {
		if err := checkSchemaOrder(body); err != nil {
			writeFault(w, &types.InvalidRequest{}, err.Error())
			return
		}
	}

	var terminal *rule
	resetAfter := false
	holdTaskMs := 0
	lateNetworkMs := 0
	for _, f := range in.match(true, call, r.URL.Path) {
		f := f
		switch f.Kind {
		case kindDelay:
			select {
			case <-time.After(time.Duration(f.Ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		case kindExpireSessions:
			in.expireSessions()
		case kindTaskDelay:
			holdTaskMs = f.Ms
		case kindLateNetwork:
			lateNetworkMs = f.Ms
		case kindReset:
			if f.Phase == "after" {
				resetAfter = true
			} else if terminal == nil {
				terminal = &f
			}
		default:
			if terminal == nil {
				terminal = &f
			}
		}
	}

	if terminal != nil {
		switch terminal.Kind {
		case kindReset:
			resetConnection(w)
		case kindHTTPStatus:
			http.Error(w, http.StatusText(terminal.Status), terminal.Status)
		case kindFault:
			writeFault(w, terminal.fault, terminal.Message)
		case kindTaskError:
			writeFailedTask(w, call, terminal.fault, terminal.Message)
		}
		return
	}

	if holdTaskMs > 0 && !resetAfter {
		in.serveDelayedTask(w, r, call, body, time.Duration(holdTaskMs)*time.Millisecond)
		return
	}

	// With a reset after, the call is served as any other (the harness's corrections
	// included), but its answer never reaches the client.
	out := w
	if resetAfter {
		out = httptest.NewRecorder()
		defer resetConnection(w)
	}
	if readsNetworkVms(call.req) {
		networkMu.Lock()
		syncNetworkVms()
		networkMu.Unlock()
	}
	if needsSession(call.method) && !sessionLive(callerSession(r)) {
		writeFault(out, notAuthenticated(call.this), "The session is not authenticated.")
		return
	}
	if !serveNetwork(out, call, body, time.Duration(lateNetworkMs)*time.Millisecond) && !in.serveDatastoreSOAP(out, r, call) &&
		!in.pager.serve(in.inner, out, r, call, callerSession(r)) {
		in.inner.ServeHTTP(out, r)
	}
	in.noteSetCookies(out.Header())
}

func (in *injector) serveUpload(w http.ResponseWriter, r *http.Request) {
	counter := &countingReader{r: r.Body}
	r.Body = ioutil.NopCloser(counter)
	firing := in.match(false, soapCall{}, r.URL.Path)
	defer func() {
		in.mu.Lock()
		in.stats.Uploads++
		in.stats.UploadBytes += counter.n
		in.mu.Unlock()
	}()
	if len(firing) == 0 {
		in.store(w, r)
		return
	}
	counter.limit = firing[0].AfterBytes
	counter.limited = true
	// Let the simulator store what arrived before the cut (as a host would leave a
	// partial file), but send the client no answer: its connection is reset.
	in.store(&discardWriter{header: http.Header{}}, r)
	resetConnection(w)
}

// store writes an upload where it goes: an import lease's disk, or the simulator.
func (in *injector) store(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, nfcPrefix) && in.nfc.serveHTTP(w, r) {
		return
	}
	in.inner.ServeHTTP(w, r)
}

type countingReader struct {
	r       io.Reader
	n       int64
	limit   int64
	limited bool
}

var errCut = errors.New("upload cut by fault injection")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limited {
		left := c.limit - c.n
		if left <= 0 {
			return 0, errCut
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// resetConnection drops the client's TCP connection with an RST, so it sees
// ECONNRESET rather than a clean close.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "connection reset requested but not possible", http.StatusInternalServerError)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tcp, ok := raw.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = raw.Close()
}

func (in *injector) noteSession(key string) {
	in.mu.Lock()
	in.sessions[key] = true
	in.mu.Unlock()
}

func (in *injector) noteSetCookies(h http.Header) {
	resp := http.Response{Header: h}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie && c.Value != "" {
			in.noteSession(c.Value)
		}
	}
}

const envelopeStart = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>`
const envelopeEnd = `</soapenv:Body></soapenv:Envelope>`

// writeResponse answers a SOAP call with its <method>Response around inner (XML).
func writeResponse(w http.ResponseWriter, method, inner string) {
	var out bytes.Buffer
	out.WriteString(envelopeStart)
	fmt.Fprintf(&out, `<%sResponse xmlns="urn:vim25">%s</%sResponse>`, method, inner, method)
	out.WriteString(envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.Bytes())
}

// writeRef answers a SOAP call whose returnval is a managed object reference (a task, say).
func writeRef(w http.ResponseWriter, method string, ref types.ManagedObjectReference) {
	writeResponse(w, method, fmt.Sprintf(`<returnval type="%s">%s</returnval>`, ref.Type, ref.Value))
}

var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// writeFault answers with a SOAP fault whose detail carries the vim fault, typed
// with xsi:type as vCenter does.
func writeFault(w http.ResponseWriter, fault types.BaseMethodFault, message string) {
	name := reflect.TypeOf(fault).Elem().Name()
	if message == "" {
		message = "injected fault: " + name
	}
	var detail bytes.Buffer
	enc := xml.NewEncoder(&detail)
	start := xml.StartElement{
		Name: xml.Name{Local: name + "Fault"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "xmlns"}, Value: "urn:vim25"},
			{Name: xml.Name{Local: "xsi:type"}, Value: name},
		},
	}
	if err := enc.EncodeElement(fault, start); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = enc.Flush()
	var out bytes.Buffer
	out.WriteString(envelopeStart)
	out.WriteString(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>`)
	// Only what text content must escape: quotes and newlines stay readable, as in vCenter's messages.
	out.WriteString(textEscaper.Replace(message))
	out.WriteString(`</faultstring><detail>`)
	out.Write(detail.Bytes())
	out.WriteString(`</detail></soapenv:Fault>`)
	out.WriteString(envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(out.Bytes())
}

// writeFailedTask answers a *_Task call with a real simulator task that has
// already ended in error; the method itself is not run.
func writeFailedTask(w http.ResponseWriter, call soapCall, fault types.BaseMethodFault, message string) {
	if call.this.Type == "" {
		writeFault(w, &types.InvalidRequest{}, "taskError: the request has no _this")
		return
	}
	name := reflect.TypeOf(fault).Elem().Name()
	if message == "" {
		message = "injected task fault: " + name
	}
	task := simulator.CreateTask(call.this, strings.TrimSuffix(call.method, "_Task")+"Task",
		func(*simulator.Task) (types.AnyType, types.BaseMethodFault) { return nil, fault })
	ref := task.Run()
	simulator.Map.Update(task, []types.PropertyChange{{
		Name: "info.error",
		Val:  &types.LocalizedMethodFault{Fault: fault, LocalizedMessage: message},
	}})
	writeRef(w, call.method, ref)
}

// controlHandler serves the JSON control API (see README "Fault injection").
func (in *injector) controlHandler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v interface{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("/rules", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			reply(w, http.StatusOK, in.snapshotRules())
		case http.MethodPost:
			data, _ := ioutil.ReadAll(r.Body)
			added, err := in.addRuleJSON(data)
			if err != nil {
				reply(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			reply(w, http.StatusCreated, added)
		case http.MethodDelete:
			in.mu.Lock()
			in.rules = nil
			in.mu.Unlock()
			reply(w, http.StatusOK, map[string]bool{"ok": true})
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/rules/", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/rules/"))
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"error": "rule id must be a number"})
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		for i, rl := range in.rules {
			if rl.ID != id {
				continue
			}
			switch r.Method {
			case http.MethodGet:
				reply(w, http.StatusOK, rl)
			case http.MethodDelete:
				in.rules = append(in.rules[:i], in.rules[i+1:]...)
				reply(w, http.StatusOK, rl)
			default:
				w.WriteHeader(http.StatusMethodNotAllowed)
			}
			return
		}
		reply(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no rule %d", id)})
	})
	mux.HandleFunc("/pbm/incompatible", pbmControl) // pbm.go
	mux.HandleFunc("/sessions/expire", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		reply(w, http.StatusOK, map[string]int{"expired": in.expireSessions()})
	})
	mux.HandleFunc("/sessions", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		reply(w, http.StatusOK, map[string]int{"live": len(in.liveSessionKeys())})
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		defer in.mu.Unlock()
		s := in.stats
		s.Sessions = len(in.sessions)
		methods := make(map[string]int, len(s.Methods))
		for k, v := range s.Methods {
			methods[k] = v
		}
		s.Methods = methods
		actions := make(map[string]int, len(s.SOAPActions))
		for k, v := range s.SOAPActions {
			actions[k] = v
		}
		s.SOAPActions = actions
		// DELETE answers the counts as they were, then zeroes them: a test reads and
		// restarts its window in one call, with nothing lost in between.
		if r.Method == http.MethodDelete {
			in.stats = newStats()
		}
		reply(w, http.StatusOK, s)
	})
	return mux
}

// noteConnState is the SDK server's http.Server.ConnState hook: it counts every
// connection accepted, before any TLS handshake, so TLS and plain count alike.
func (in *injector) noteConnState(_ net.Conn, state http.ConnState) {
	if state != http.StateNew {
		return
	}
	in.mu.Lock()
	in.stats.Connections++
	in.mu.Unlock()
}

func (in *injector) snapshotRules() []rule {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]rule, 0, len(in.rules))
	for _, r := range in.rules {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// returnvalRef reads the ManagedObjectReference a method returned.
func returnvalRef(doc []byte) types.ManagedObjectReference {
	var ref types.ManagedObjectReference
	dec := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ref
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "returnval" {
			for _, a := range se.Attr {
				if a.Name.Local == "type" {
					ref.Type = a.Value
				}
			}
			var v string
			_ = dec.DecodeElement(&v, &se)
			ref.Value = strings.TrimSpace(v)
			return ref
		}
	}
}
