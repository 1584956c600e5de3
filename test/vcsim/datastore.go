package main

import (
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Datastore file access over HTTP (/folder/<path>?dcPath=<dc>&dsName=<ds>) as
// vCenter serves it, where govmomi's simulator differs: every request needs the
// vmware_soap_session cookie of a live session (the simulator needs none), and
// DELETE removes one file (the simulator serves it as a GET). A PUT into a folder
// that does not exist makes the folder, on vCenter as in the simulator (see README).

const folderPrefix = "/folder/"

// serveFolder answers the datastore requests the simulator would get wrong; false
// when the request is fine to pass on.
func (in *injector) serveFolder(w http.ResponseWriter, r *http.Request) bool {
	if !sessionLive(callerSession(r)) {
		w.Header().Set("WWW-Authenticate", `Basic realm="VMware HTTP server"`)
		http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
		return true
	}
	file, ok := datastoreFile(r.URL)
	if !ok {
		return false // the simulator answers 404 for a datastore it cannot find
	}
	switch r.Method {
	case http.MethodDelete:
		fi, err := os.Stat(file)
		switch {
		case err != nil:
			http.Error(w, "404 Not Found", http.StatusNotFound)
		case fi.IsDir():
			// Folders go through FileManager.DeleteDatastoreFile_Task, not HTTP.
			http.Error(w, "403 Forbidden: a folder cannot be deleted over HTTP", http.StatusForbidden)
		default:
			if err := os.Remove(file); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			} else {
				w.WriteHeader(http.StatusNoContent)
			}
		}
		return true
	}
	return false
}

// datastoreFile is the local file a /folder URL names; false when its datacenter
// or datastore is not found, or the path leaves the datastore.
func datastoreFile(u *url.URL) (string, bool) {
	q := u.Query()
	dir, ok := datastoreDir(q.Get("dcPath"), q.Get("dsName"))
	if !ok {
		return "", false
	}
	rel := strings.TrimPrefix(u.Path, folderPrefix)
	file := path.Join(dir, rel)
	if file != dir && !strings.HasPrefix(file, dir+"/") {
		return "", false
	}
	return file, true
}

// datastoreDir finds the folder behind datastore dsName of datacenter dcPath (a
// datacenter name, or an inventory path ending with one).
func datastoreDir(dcPath, dsName string) (string, bool) {
	if dcPath == "" || dsName == "" {
		return "", false
	}
	dcName := path.Base(dcPath)
	for _, obj := range simulator.Map.All("Datacenter") {
		dc, ok := obj.(*simulator.Datacenter)
		if !ok || dc.Name != dcName {
			continue
		}
		if ds := findDatastoreIn(dc.DatastoreFolder, dsName); ds != nil {
			return ds.Info.GetDatastoreInfo().Url, true
		}
	}
	return "", false
}

func findDatastoreIn(folder types.ManagedObjectReference, name string) *simulator.Datastore {
	var children []types.ManagedObjectReference
	switch f := simulator.Map.Get(folder).(type) {
	case *simulator.Folder:
		children = f.ChildEntity
	case *simulator.StoragePod:
		children = f.ChildEntity
	}
	for _, ref := range children {
		switch ref.Type {
		case "Datastore":
			if ds, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok && ds.Name == name {
				return ds
			}
		case "Folder", "StoragePod":
			if ds := findDatastoreIn(ref, name); ds != nil {
				return ds
			}
		}
	}
	return nil
}
