package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// pager gives RetrievePropertiesEx the paging vCenter has and this simulator lacks:
// at most options.maxObjects objects per answer, the rest behind a token for
// ContinueRetrievePropertiesEx (and CancelRetrievePropertiesEx). As on vCenter, a
// token belongs to the session that made it (its property collector's state) and
// dies with it: another session's token, or one whose session logged out or
// expired, is an InvalidArgument on "token".
type pager struct {
	mu     sync.Mutex
	next   int
	queues map[string]*pageQueue
}

type pageQueue struct {
	session string
	size    int
	objects [][]byte
}

func newPager() *pager { return &pager{queues: map[string]*pageQueue{}} }

// invalidToken is vCenter's answer to a token this session cannot continue.
func invalidToken(w http.ResponseWriter) {
	writeFault(w, &types.InvalidArgument{InvalidProperty: "token"}, "A specified parameter was not correct: token")
}

// serve handles the paging methods; it returns false for every other method. The
// caller has checked that the request's session is live.
func (p *pager) serve(inner http.Handler, w http.ResponseWriter, r *http.Request, call soapCall, session string) bool {
	switch req := call.req.(type) {
	case *types.RetrievePropertiesEx:
		size := int(req.Options.MaxObjects)
		if size <= 0 {
			return false
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return true
		}
		objects, err := topLevelObjects(rec.Body.Bytes())
		if err != nil || len(objects) <= size {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return true
		}
		token := p.store(session, size, objects[size:])
		writeResult(w, call.method, token, objects[:size])
		return true
	case *types.ContinueRetrievePropertiesEx:
		page, rest, ok := p.take(session, req.Token)
		if !ok {
			invalidToken(w)
			return true
		}
		token := req.Token
		if !rest {
			token = ""
		}
		writeResult(w, call.method, token, page)
		return true
	case *types.CancelRetrievePropertiesEx:
		if !p.cancel(session, req.Token) {
			invalidToken(w)
			return true
		}
		writeResponse(w, "CancelRetrievePropertiesEx", "")
		return true
	}
	return false
}

func (p *pager) store(session string, size int, objects [][]byte) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Results of sessions that ended can never be continued: drop them.
	for token, q := range p.queues {
		if !sessionLive(q.session) {
			delete(p.queues, token)
		}
	}
	p.next++
	token := strconv.Itoa(p.next)
	p.queues[token] = &pageQueue{session: session, size: size, objects: objects}
	return token
}

// take returns the next page and whether more remain after it; ok is false for a
// token that is unknown, finished or another session's.
func (p *pager) take(session, token string) (page [][]byte, more bool, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, found := p.queues[token]
	if !found || q.session != session {
		return nil, false, false
	}
	n := q.size
	if n > len(q.objects) {
		n = len(q.objects)
	}
	page = q.objects[:n]
	q.objects = q.objects[n:]
	if len(q.objects) == 0 {
		delete(p.queues, token)
		return page, false, true
	}
	return page, true, true
}

// cancel drops the session's token; a finished one is no error, another
// session's is.
func (p *pager) cancel(session, token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, found := p.queues[token]
	if !found {
		return true
	}
	if q.session != session {
		return false
	}
	delete(p.queues, token)
	return true
}

// topLevelObjects cuts the <objects> elements out of a RetrieveResult, as raw XML.
func topLevelObjects(doc []byte) ([][]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var out [][]byte
	depth := 0
	returnvalDepth := -1
	var start int64
	for {
		offset := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if t.Name.Local == "returnval" && returnvalDepth < 0 {
				returnvalDepth = depth
			} else if returnvalDepth >= 0 && depth == returnvalDepth+1 && t.Name.Local == "objects" {
				start = offset
			}
		case xml.EndElement:
			if returnvalDepth >= 0 && depth == returnvalDepth+1 && t.Name.Local == "objects" {
				out = append(out, doc[start:dec.InputOffset()])
			}
			depth--
		}
	}
}

func writeResult(w http.ResponseWriter, method, token string, objects [][]byte) {
	var out bytes.Buffer
	out.WriteString(envelopeStart)
	fmt.Fprintf(&out, `<%sResponse xmlns="urn:vim25"><returnval>`, method)
	if token != "" {
		fmt.Fprintf(&out, `<token>%s</token>`, token)
	}
	for _, o := range objects {
		out.Write(o)
	}
	fmt.Fprintf(&out, `</returnval></%sResponse>`, method)
	out.WriteString(envelopeEnd)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.Bytes())
}
