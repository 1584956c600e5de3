package main

import (
	"bytes"
	"fmt"
	"io"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// OVF import as vCenter runs it, where the simulator differs: ResourcePool.ImportVApp
// makes the VM with its disks (a descriptor and a -flat extent of the spec's
// capacity) and returns an HttpNfcLease that is `initializing` for a moment before it
// is `ready` with its deviceUrl list (the simulator's is ready at once); a PUT or POST
// of a streamOptimized VMDK to a disk's URL is decoded into that disk's -flat extent
// (the simulator discards it); HttpNfcLeaseProgress sets transferProgress;
// HttpNfcLeaseComplete ends the lease (`done`) and keeps the VM; HttpNfcLeaseAbort
// ends it (`error`) and removes the VM and its files, as vCenter does.

const nfcPrefix = "/nfc/"

type nfcLeases struct {
	mu     sync.Mutex
	leases map[string]*importLease // by lease moref value
	ready  time.Duration
	// hostURL, when set, is the NFC host's origin (nfchost.go): device URLs name it,
	// with hostThumbprint as their sslThumbprint, and only it takes the uploads.
	hostURL        string
	hostThumbprint string
}

type importLease struct {
	lease *simulator.HttpNfcLease
	vm    types.ManagedObjectReference
	dc    types.ManagedObjectReference
	disks map[string]*importDisk // by the name in the URL (disk-0.vmdk)
	info  types.HttpNfcLeaseInfo // published when the lease turns ready
	// closed: completed or aborted; its URLs take nothing more (guarded by nfcLeases.mu).
	closed bool
	// transition makes each change of state (ready, done, error) check and set at once.
	transition sync.Mutex
}

type importDisk struct {
	file diskFile
}

func newNFCLeases(ready time.Duration) *nfcLeases {
	return &nfcLeases{leases: map[string]*importLease{}, ready: ready}
}

func (n *nfcLeases) get(value string) *importLease {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leases[value]
}

// serveSOAP handles ImportVApp and the methods of the leases it made; false for
// every other call.
func (n *nfcLeases) serveSOAP(in *injector, w http.ResponseWriter, r *http.Request, call soapCall) bool {
	var l *importLease
	switch call.req.(type) {
	case *types.ImportVApp:
	case *types.HttpNfcLeaseProgress, *types.HttpNfcLeaseComplete, *types.HttpNfcLeaseAbort, *types.HttpNfcLeaseGetManifest:
		if l = n.get(call.this.Value); l == nil {
			return false // a lease of the simulator's own (an export)
		}
	default:
		return false
	}
	if !sessionLive(callerSession(r)) {
		writeFault(w, notAuthenticated(call.this), "The session is not authenticated.")
		return true
	}
	var fault types.BaseMethodFault
	var result string
	switch req := call.req.(type) {
	case *types.ImportVApp:
		var ref types.ManagedObjectReference
		ref, fault = n.importVApp(in, r, req)
		if fault == nil {
			result = fmt.Sprintf(`<returnval type="%s">%s</returnval>`, ref.Type, ref.Value)
		}
	case *types.HttpNfcLeaseProgress:
		fault = l.progress(req.Percent)
	case *types.HttpNfcLeaseComplete:
		fault = n.complete(l)
	case *types.HttpNfcLeaseAbort:
		fault = n.abort(in, l, req.Fault)
	case *types.HttpNfcLeaseGetManifest:
		fault = &types.NotSupported{}
	}
	if fault != nil {
		writeFault(w, fault, faultMessage(fault))
		return true
	}
	writeResponse(w, call.method, result)
	return true
}

func (n *nfcLeases) importVApp(in *injector, r *http.Request, req *types.ImportVApp) (types.ManagedObjectReference, types.BaseMethodFault) {
	var none types.ManagedObjectReference
	spec, ok := req.Spec.(*types.VirtualMachineImportSpec)
	if !ok {
		return none, &types.InvalidArgument{InvalidProperty: "spec"}
	}
	dc := entityDatacenter(req.This)
	if dc == nil {
		return none, &types.ManagedObjectNotFound{Obj: req.This}
	}
	folder := dc.VmFolder
	if req.Folder != nil {
		folder = *req.Folder
	}
	vmRef, fault := in.createVM(r, folder, req.This, req.Host, spec.ConfigSpec)
	if fault != nil {
		return none, fault
	}
	vm, ok := simulator.Map.Get(vmRef).(*simulator.VirtualMachine)
	if !ok {
		return none, &types.ManagedObjectNotFound{Obj: vmRef}
	}
	l := &importLease{vm: vmRef, dc: dc.Self, disks: map[string]*importDisk{}}
	l.lease = &simulator.HttpNfcLease{HttpNfcLease: mo.HttpNfcLease{
		State: types.HttpNfcLeaseStateInitializing,
		Mode:  "pushOrGet",
	}}
	simulator.Map.Put(l.lease)
	ref := l.lease.Self
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	l.info = types.HttpNfcLeaseInfo{Lease: ref, Entity: vmRef, LeaseTimeout: 300}
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	n.mu.Lock()
	// "*" is the host the client reached (vCenter); an ESXi host of its own is named, with its certificate's thumbprint.
	base := fmt.Sprintf("%s://*", scheme)
	if n.hostURL != "" {
		base = n.hostURL
	}
	ndisk := 0
	for _, d := range devices {
		disk, ok := d.(*types.VirtualDisk)
		if !ok {
			continue
		}
		backing, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		file, fault := resolveDisk(&dc.Self, backing.GetVirtualDeviceFileBackingInfo().FileName)
		if fault != nil {
			n.mu.Unlock()
			return none, fault
		}
		thin := false
		if flat, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && flat.ThinProvisioned != nil {
			thin = *flat.ThinProvisioned
		}
		if err := makeImportDisk(file, disk.CapacityInKB*2, controllerAdapter(devices, disk), thin, strings.TrimPrefix(vm.Config.Version, "vmx-")); err != nil {
			n.mu.Unlock()
			return none, &types.CannotCreateFile{FileFault: types.FileFault{File: file.dsPath}}
		}
		name := fmt.Sprintf("disk-%d.vmdk", ndisk)
		l.disks[name] = &importDisk{file: file}
		l.info.TotalDiskCapacityInKB += disk.CapacityInKB
		// importKey matches the deviceId of the OvfFileItem CreateImportSpec made for this disk.
		l.info.DeviceUrl = append(l.info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			Key:           fmt.Sprintf("/%s/%d", vmRef.Value, disk.Key),
			ImportKey:     fmt.Sprintf("/%s/%s:%d", vm.Name, devices.Type(disk), ndisk),
			Url:           fmt.Sprintf("%s%s%s/%s", base, nfcPrefix, ref.Value, name),
			SslThumbprint: n.hostThumbprint,
			Disk:          types.NewBool(true),
			TargetId:      name,
		})
		ndisk++
	}
	n.leases[ref.Value] = l
	n.mu.Unlock()
	// vCenter prepares the host and its disks first: only then is the lease ready
	// and does it say where to upload.
	time.AfterFunc(n.ready, func() {
		l.transition.Lock()
		defer l.transition.Unlock()
		if l.state() != types.HttpNfcLeaseStateInitializing {
			return // aborted while it was being prepared
		}
		info := l.info
		simulator.Map.Update(l.lease, []types.PropertyChange{
			{Name: "initializeProgress", Val: int32(100)},
			{Name: "info", Val: &info},
			{Name: "state", Val: types.HttpNfcLeaseStateReady},
		})
	})
	return ref, nil
}

// createVM runs CreateVM_Task through the simulator in the caller's session and
// returns the new VM.
func (in *injector) createVM(r *http.Request, folder, pool types.ManagedObjectReference, host *types.ManagedObjectReference, config types.VirtualMachineConfigSpec) (types.ManagedObjectReference, types.BaseMethodFault) {
	var none types.ManagedObjectReference
	body, err := encodeBody("CreateVM_Task", &types.CreateVM_Task{This: folder, Config: config, Pool: pool, Host: host})
	if err != nil {
		return none, &types.InvalidArgument{InvalidProperty: "spec"}
	}
	req := httptest.NewRequest(http.MethodPost, r.URL.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: callerSession(r)})
	rec := httptest.NewRecorder()
	in.inner.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return none, decodeFault(rec.Body.Bytes()).Fault
	}
	task, ok := simulator.Map.Get(returnvalRef(rec.Body.Bytes())).(*simulator.Task)
	if !ok {
		return none, &types.RuntimeFault{}
	}
	if task.Info.Error != nil {
		return none, task.Info.Error.Fault
	}
	vm, ok := task.Info.Result.(types.ManagedObjectReference)
	if !ok {
		return none, &types.RuntimeFault{}
	}
	return vm, nil
}

// makeImportDisk replaces the empty files the simulator made for an imported disk
// with a descriptor and a zero-filled extent of its capacity, as ESXi creates it.
func makeImportDisk(f diskFile, sectors int64, adapter string, thin bool, hw string) error {
	os.Remove(f.descriptor)
	os.Remove(f.flat())
	if err := writeFlat(f.flat(), sectors*512); err != nil {
		return err
	}
	d := newFlatDescriptor(path.Base(f.flat()), sectors, adapter, thin, hw)
	return ioutil.WriteFile(f.descriptor, []byte(d.String()), 0o600)
}

func controllerAdapter(devices object.VirtualDeviceList, disk *types.VirtualDisk) string {
	switch devices.FindByKey(disk.ControllerKey).(type) {
	case *types.VirtualIDEController:
		return "ide"
	case *types.VirtualBusLogicController:
		return "buslogic"
	}
	return "lsilogic"
}

func entityDatacenter(ref types.ManagedObjectReference) *simulator.Datacenter {
	for i := 0; i < 64; i++ {
		obj := simulator.Map.Get(ref)
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		ref = *e.Entity().Parent
	}
	return nil
}

func (l *importLease) state() types.HttpNfcLeaseState {
	var s types.HttpNfcLeaseState
	simulator.Map.WithLock(l.lease, func() { s = l.lease.State })
	return s
}

func invalidLeaseState(*importLease) *types.InvalidState {
	return &types.InvalidState{}
}

func (l *importLease) progress(percent int32) types.BaseMethodFault {
	if percent < 0 || percent > 100 {
		return &types.InvalidArgument{InvalidProperty: "percent"}
	}
	if l.state() != types.HttpNfcLeaseStateReady {
		return invalidLeaseState(l)
	}
	simulator.Map.Update(l.lease, []types.PropertyChange{{Name: "transferProgress", Val: percent}})
	return nil
}

func (n *nfcLeases) complete(l *importLease) types.BaseMethodFault {
	l.transition.Lock()
	defer l.transition.Unlock()
	if l.state() != types.HttpNfcLeaseStateReady {
		return invalidLeaseState(l)
	}
	n.finish(l)
	simulator.Map.Update(l.lease, []types.PropertyChange{
		{Name: "transferProgress", Val: int32(100)},
		{Name: "state", Val: types.HttpNfcLeaseStateDone},
	})
	return nil
}

// abort ends the lease in error and removes the VM it was importing, with its files.
func (n *nfcLeases) abort(in *injector, l *importLease, fault *types.LocalizedMethodFault) types.BaseMethodFault {
	l.transition.Lock()
	defer l.transition.Unlock()
	switch l.state() {
	case types.HttpNfcLeaseStateDone, types.HttpNfcLeaseStateError:
		return invalidLeaseState(l)
	}
	n.finish(l)
	if fault == nil {
		fault = &types.LocalizedMethodFault{Fault: &types.RequestCanceled{}, LocalizedMessage: "The operation was canceled by the user"}
	}
	simulator.Map.Update(l.lease, []types.PropertyChange{
		{Name: "error", Val: fault},
		{Name: "state", Val: types.HttpNfcLeaseStateError},
	})
	in.destroyVM(l.vm)
	return nil
}

// finish stops the lease's URLs (an upload already running goes on into files that
// an abort removes). The lease stays known, so a later call on it is InvalidState.
func (n *nfcLeases) finish(l *importLease) {
	n.mu.Lock()
	l.closed = true
	n.mu.Unlock()
}

// destroyVM runs Destroy_Task in the harness's own session: vCenter removes an
// aborted import whatever the client's session does next.
func (in *injector) destroyVM(vm types.ManagedObjectReference) {
	body, err := encodeBody("Destroy_Task", &types.Destroy_Task{This: vm})
	if err != nil {
		return
	}
	req := httptest.NewRequest(http.MethodPost, "/sdk", bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: in.internalKey})
	in.inner.ServeHTTP(httptest.NewRecorder(), req)
}

// serveHTTP stores an upload to one of the harness's leases; false for another URL.
func (n *nfcLeases) serveHTTP(w http.ResponseWriter, r *http.Request) bool {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, nfcPrefix), "/")
	if len(parts) != 2 {
		return false
	}
	n.mu.Lock()
	l := n.leases[parts[0]]
	var disk *importDisk
	if l != nil && !l.closed {
		disk = l.disks[parts[1]]
	}
	hostURL := n.hostURL
	n.mu.Unlock()
	if l == nil {
		return false
	}
	if hostURL != "" && !onNFCHost(r) {
		http.Error(w, "this lease's disks are uploaded to its host, "+hostURL, http.StatusNotFound)
		return true
	}
	if disk == nil { // no such disk, or the lease is over
		http.NotFound(w, r)
		return true
	}
	if l.state() != types.HttpNfcLeaseStateReady {
		http.Error(w, "the lease is not ready", http.StatusNotFound)
		return true
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return true
	}
	if err := storeStreamOptimized(r.Body, disk.file); err != nil {
		_, _ = io.Copy(ioutil.Discard, r.Body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return true
	}
	w.WriteHeader(http.StatusOK)
	return true
}

// storeStreamOptimized decodes a streamOptimized VMDK into the disk's -flat extent,
// in place as the grains arrive (a cut upload leaves what arrived), growing the disk
// when the stream's capacity is larger than the spec's.
func storeStreamOptimized(body io.Reader, f diskFile) error {
	head := make([]byte, 512)
	if _, err := io.ReadFull(body, head); err != nil {
		return fmt.Errorf("the upload ended before a VMDK header")
	}
	h, err := parseSparseHeader(head)
	if err != nil || !h.compressed() {
		return fmt.Errorf("not a streamOptimized VMDK")
	}
	data, err := ioutil.ReadFile(f.descriptor)
	if err != nil {
		return err
	}
	d, err := parseDescriptor(string(data))
	if err != nil {
		return err
	}
	ext := singleFlatExtent(d)
	if ext == nil {
		return fmt.Errorf("the imported disk has no flat extent")
	}
	if sectors := int64(h.Capacity); sectors > ext.sectors {
		if err := os.Truncate(f.flat(), sectors*512); err != nil {
			return err
		}
		ext.sectors = sectors
		d.setExtent(*ext)
		d.setGeometry(sectors)
		if err := ioutil.WriteFile(f.descriptor, []byte(d.String()), 0o600); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(f.flat(), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := decodeStream(body, h, out); err != nil {
		return fmt.Errorf("the streamOptimized VMDK is corrupt or truncated")
	}
	return nil
}
