package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"

	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// pager gives RetrievePropertiesEx the paging vCenter has and this simulator lacks:
// at most options.maxObjects objects per answer, the rest behind a token for
// ContinueRetrievePropertiesEx (and CancelRetrievePropertiesEx).
type pager struct {
	mu     sync.Mutex
	next   int
	queues map[string]*pageQueue
}

type pageQueue struct {
	size    int
	objects [][]byte
}

func newPager() *pager { return &pager{queues: map[string]*pageQueue{}} }

var maxObjectsRe = regexp.MustCompile(`<maxObjects>\s*(\d+)\s*</maxObjects>`)
var tokenRe = regexp.MustCompile(`<token>\s*([^<]+?)\s*</token>`)

// serve handles the paging methods; it returns false for every other method.
func (p *pager) serve(inner http.Handler, w http.ResponseWriter, r *http.Request, call soapCall, body []byte) bool {
	switch call.method {
	case "RetrievePropertiesEx":
		m := maxObjectsRe.FindSubmatch(body)
		if m == nil {
			return false
		}
		size, _ := strconv.Atoi(string(m[1]))
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
		token := p.store(size, objects[size:])
		writeResult(w, call.method, token, objects[:size])
		return true
	case "ContinueRetrievePropertiesEx":
		m := tokenRe.FindSubmatch(body)
		if m == nil {
			return false
		}
		token := string(m[1])
		page, rest, ok := p.take(token)
		if !ok {
			writeFault(w, &types.InvalidArgument{InvalidProperty: "token"}, fmt.Sprintf("unknown or finished token %q", token))
			return true
		}
		if !rest {
			token = ""
		}
		writeResult(w, call.method, token, page)
		return true
	case "CancelRetrievePropertiesEx":
		if m := tokenRe.FindSubmatch(body); m != nil {
			p.mu.Lock()
			delete(p.queues, string(m[1]))
			p.mu.Unlock()
		}
		var out bytes.Buffer
		out.WriteString(envelopeStart)
		out.WriteString(`<CancelRetrievePropertiesExResponse xmlns="urn:vim25"></CancelRetrievePropertiesExResponse>`)
		out.WriteString(envelopeEnd)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(out.Bytes())
		return true
	}
	return false
}

func (p *pager) store(size int, objects [][]byte) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	token := "page-" + strconv.Itoa(p.next)
	p.queues[token] = &pageQueue{size: size, objects: objects}
	return token
}

// take returns the next page and whether more remain after it.
func (p *pager) take(token string) ([][]byte, bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q, ok := p.queues[token]
	if !ok {
		return nil, false, false
	}
	n := q.size
	if n > len(q.objects) {
		n = len(q.objects)
	}
	page := q.objects[:n]
	q.objects = q.objects[n:]
	if len(q.objects) == 0 {
		delete(p.queues, token)
		return page, false, true
	}
	return page, true, true
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
