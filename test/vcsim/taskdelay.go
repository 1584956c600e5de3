package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// A vCenter task changes the inventory when it does its work, so while it runs
// nothing of its effect shows. The simulator runs a *_Task method to its end before
// it answers; taskDelay instead answers at once with a running task, and only when
// the delay is over runs the real method and ends the task with its outcome.

// serveDelayedTask answers a *_Task call with a new running task and runs the
// method after d. The caller has checked the method name.
func (in *injector) serveDelayedTask(w http.ResponseWriter, r *http.Request, call soapCall, body []byte, d time.Duration) {
	session := callerSession(r)
	if !sessionLive(session) {
		writeFault(w, notAuthenticated(call.this), "The session is not authenticated.")
		return
	}
	if call.this.Type == "" || simulator.Map.Get(call.this) == nil {
		writeFault(w, &types.ManagedObjectNotFound{Obj: call.this}, fmt.Sprintf("The object '%s' has already been deleted or has not been completely created", call.this))
		return
	}
	task := simulator.CreateTask(call.this, strings.TrimSuffix(call.method, "_Task")+"Task", nil)
	simulator.Map.Update(task, []types.PropertyChange{
		{Name: "info.state", Val: types.TaskInfoStateRunning},
		{Name: "info.startTime", Val: time.Now()},
		{Name: "info.progress", Val: int32(0)},
	})
	time.AfterFunc(d/2, func() {
		simulator.Map.Update(task, []types.PropertyChange{{Name: "info.progress", Val: int32(50)}})
	})
	time.AfterFunc(d, func() { in.finishDelayedTask(task, r, call, body, session) })

	writeRef(w, call.method, task.Self)
}

// finishDelayedTask runs the method now and ends task as the method ended. It runs
// in the caller's session if that is still live; otherwise in the injector's own,
// since a vCenter task goes on after the session that started it ends.
func (in *injector) finishDelayedTask(task *simulator.Task, orig *http.Request, call soapCall, body []byte, session string) {
	if !sessionLive(session) {
		session = in.internalKey
	}
	req := httptest.NewRequest(http.MethodPost, orig.URL.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", orig.Header.Get("SOAPAction"))
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: session})
	rec := httptest.NewRecorder()
	if !in.serveDatastoreSOAP(rec, req, call) {
		in.inner.ServeHTTP(rec, req)
	}

	state := types.TaskInfoStateSuccess
	var result types.AnyType
	var failure *types.LocalizedMethodFault
	if rec.Code == http.StatusOK {
		ref := returnvalRef(rec.Body.Bytes())
		inner, ok := simulator.Map.Get(ref).(*simulator.Task)
		if !ok {
			failure = &types.LocalizedMethodFault{Fault: &types.SystemError{Reason: "no task"}, LocalizedMessage: fmt.Sprintf("%s returned no task", call.method)}
		} else {
			result = inner.Info.Result
			failure = inner.Info.Error
		}
	} else {
		failure = decodeFault(rec.Body.Bytes())
	}
	changes := []types.PropertyChange{
		{Name: "info.progress", Val: int32(100)},
		{Name: "info.result", Val: result},
		{Name: "info.error", Val: nil},
		{Name: "info.completeTime", Val: time.Now()},
	}
	if failure != nil {
		state = types.TaskInfoStateError
		changes[2].Val = *failure
	}
	// The state goes last, with the rest, so a watcher that sees it done sees its outcome.
	changes = append(changes, types.PropertyChange{Name: "info.state", Val: state})
	simulator.Map.Update(task, changes)
}

// decodeFault reads the vim fault out of a SOAP fault answer.
func decodeFault(doc []byte) *types.LocalizedMethodFault {
	var env struct {
		Body struct {
			Fault *soap.Fault `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault"`
		} `xml:"http://schemas.xmlsoap.org/soap/envelope/ Body"`
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.TypeFunc = types.TypeFunc()
	if err := dec.Decode(&env); err != nil || env.Body.Fault == nil {
		return &types.LocalizedMethodFault{Fault: &types.SystemError{Reason: "unreadable answer"}, LocalizedMessage: "the method's answer could not be read"}
	}
	f, ok := env.Body.Fault.Detail.Fault.(types.BaseMethodFault)
	if !ok {
		f = &types.SystemError{Reason: env.Body.Fault.String}
	}
	return &types.LocalizedMethodFault{Fault: f, LocalizedMessage: env.Body.Fault.String}
}
