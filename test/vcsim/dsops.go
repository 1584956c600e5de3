package main

import (
	"bytes"
	"fmt"
	"io/ioutil"
	"net/http"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	vxml "github.com/vmware/govmomi/vim25/xml"
)

// serveDatastoreSOAP handles the datastore and disk methods where the harness
// corrects the simulator (datastore browser, virtual disk manager, OVF import and
// its NFC lease); false for every other method, which the caller passes on.
func (in *injector) serveDatastoreSOAP(w http.ResponseWriter, r *http.Request, call soapCall) bool {
	if in.serveNicBackings(w, call) { // vmnetwork.go: a NIC on a network the datacenter lacks
		return true
	}
	if in.serveVmUpdate(w, r, call) { // vmupdate.go: hot-change rules, disk growth, extraConfig, a delta's copy
		return true
	}
	if in.serveChildDisks(w, r, call) { // childdisk.go: delta disks on a parent, and Destroy_Task of their VM
		return true
	}
	switch req := call.req.(type) {
	case *types.SearchDatastore_Task:
		if spec, changed := searchDefaults(req.SearchSpec); changed {
			req.SearchSpec = spec
			passOn(in.inner, w, r, call.method, req)
			return true
		}
	case *types.SearchDatastoreSubFolders_Task:
		if spec, changed := searchDefaults(req.SearchSpec); changed {
			req.SearchSpec = spec
			passOn(in.inner, w, r, call.method, req)
			return true
		}
	case *types.ExtendVirtualDisk_Task:
		in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
			return nil, extendVirtualDisk(req)
		})
		return true
	case *types.CopyVirtualDisk_Task:
		if ownsDiskCopy(req.SourceDatacenter, req.SourceName) {
			o := copyOptions{}
			if req.DestSpec != nil {
				o.spec = req.DestSpec.GetVirtualDiskSpec()
			}
			in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
				return nil, copyVirtualDisk(req.SourceDatacenter, req.SourceName, req.DestDatacenter, req.DestName, o)
			})
			return true
		}
	case *types.MoveVirtualDisk_Task:
		if ownsDiskCopy(req.SourceDatacenter, req.SourceName) {
			o := copyOptions{move: true, force: req.Force != nil && *req.Force}
			in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
				return nil, copyVirtualDisk(req.SourceDatacenter, req.SourceName, req.DestDatacenter, req.DestName, o)
			})
			return true
		}
	case *types.DeleteVirtualDisk_Task:
		in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
			return nil, deleteVirtualDisk(req)
		})
		return true
	case *types.CreateVirtualDisk_Task:
		if spec, ok := req.Spec.(*types.FileBackedVirtualDiskSpec); ok && flatDiskTypes[spec.DiskType] {
			in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
				if f := createVirtualDisk(req); f != nil {
					return nil, f
				}
				return req.Name, nil
			})
			return true
		}
	}
	return in.nfc.serveSOAP(in, w, r, call)
}

// ownTask answers a *_Task method the harness runs itself, in a live session only.
func (in *injector) ownTask(w http.ResponseWriter, r *http.Request, call soapCall, fn func() (types.AnyType, types.BaseMethodFault)) {
	if !sessionLive(callerSession(r)) {
		writeFault(w, notAuthenticated(call.this), "The session is not authenticated.")
		return
	}
	if _, ok := simulator.Map.Get(call.this).(*simulator.VirtualDiskManager); !ok {
		writeFault(w, &types.ManagedObjectNotFound{Obj: call.this}, fmt.Sprintf("The object '%s' has already been deleted or has not been completely created", call.this))
		return
	}
	writeTask(w, call, call.method, fn)
}

// searchDefaults gives a search what vCenter assumes when the spec leaves it out:
// with no searchSpec, or one without matchPattern, every file matches (the
// simulator panics on the first, and matches nothing on the second). An absent
// query or details already means "all files, their paths only" to the simulator.
func searchDefaults(spec *types.HostDatastoreBrowserSearchSpec) (*types.HostDatastoreBrowserSearchSpec, bool) {
	if spec != nil && len(spec.MatchPattern) > 0 {
		return spec, false
	}
	out := &types.HostDatastoreBrowserSearchSpec{}
	if spec != nil {
		*out = *spec
	}
	out.MatchPattern = []string{"*"}
	return out, true
}

// passOn hands the simulator the request re-encoded from req, as govmomi writes it.
func passOn(inner http.Handler, w http.ResponseWriter, r *http.Request, method string, req interface{}) {
	body, err := encodeBody(method, req)
	if err != nil {
		writeFault(w, &types.InvalidRequest{}, err.Error())
		return
	}
	r2 := r.Clone(r.Context())
	r2.Body = ioutil.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	inner.ServeHTTP(w, r2)
}

func encodeBody(method string, req interface{}) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body>`)
	enc := vxml.NewEncoder(&b)
	if err := enc.EncodeElement(req, vxml.StartElement{Name: vxml.Name{Space: "urn:vim25", Local: method}}); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	b.WriteString(`</soapenv:Body></soapenv:Envelope>`)
	return b.Bytes(), nil
}

// writeTask answers a *_Task call with a simulator task that runs fn.
func writeTask(w http.ResponseWriter, call soapCall, method string, fn func() (types.AnyType, types.BaseMethodFault)) {
	task := simulator.CreateTask(call.this, strings.TrimSuffix(method, "_Task")+"Task",
		func(*simulator.Task) (types.AnyType, types.BaseMethodFault) { return fn() })
	ref := task.Run()
	if task.Info.Error != nil {
		// The simulator's own message is the fault's Go type name; vCenter's says what failed.
		simulator.Map.Update(task, []types.PropertyChange{{
			Name: "info.error",
			Val:  types.LocalizedMethodFault{Fault: task.Info.Error.Fault, LocalizedMessage: faultMessage(task.Info.Error.Fault)},
		}})
	}
	writeRef(w, call.method, ref)
}

// faultMessage is vCenter's wording for the faults these methods end in, where known.
func faultMessage(f types.BaseMethodFault) string {
	switch f := f.(type) {
	case *types.FileNotFound:
		return fmt.Sprintf("File %s was not found", f.File)
	case *types.FileAlreadyExists:
		return fmt.Sprintf("Cannot complete the operation because the file or folder %s already exists", f.File)
	case *types.InvalidArgument:
		return "A specified parameter was not correct: " + f.InvalidProperty
	case *types.InvalidState:
		return "The operation is not allowed in the current state."
	case *types.NotSupported:
		return "The operation is not supported on the object."
	case *types.InvalidDiskFormat:
		return "The disk is not a valid or supported virtual disk"
	case *types.CannotAccessFile:
		return fmt.Sprintf("Cannot access file %s", f.File)
	}
	return fmt.Sprintf("%T", f)
}
