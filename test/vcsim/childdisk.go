package main

import (
	"fmt"
	"io/ioutil"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Child (delta) disks as vCenter makes them: a VirtualDisk added with
// fileOperation "create" and a backing whose `parent` names an existing disk (Nova's
// linked clone, in CreateVM_Task's or ReconfigVM_Task's deviceChange). The simulator
// records the parent but never checks it and makes the child as two empty files
// (<n>.vmdk and <n>-flat.vmdk). vCenter:
//   - refuses the spec when the parent disk is missing: InvalidDeviceSpec on
//     "virtualDeviceSpec.device.backing.parent.fileName" with the device's index
//     ("Invalid configuration for device 'N'.", as reported against vCenter in
//     cloudfoundry/bosh-vsphere-cpi-release#22 after the parent vmdk was deleted);
//   - writes the child as a sparse delta: a descriptor (createType "vmfsSparse",
//     parentCID = the parent's CID, parentFileNameHint naming the parent) and a
//     <n>-delta.vmdk extent holding no data yet;
//   - on Destroy_Task deletes every disk of the VM's chains that no other VM uses,
//     the parent included ("When run against VC that causes a disk chain to be
//     deleted rather than just the leaf", vmware/vic#1383; Nova unregisters and
//     deletes the VM's folder instead), while DeleteDatastoreFile_Task of the VM's
//     folder deletes only what is in it (vmware/vic#2230).

// serveChildDisks handles CreateVM_Task and ReconfigVM_Task that add a child disk,
// and Destroy_Task of a VM with disks; false for every other call.
func (in *injector) serveChildDisks(w http.ResponseWriter, r *http.Request, call soapCall) bool {
	var spec *types.VirtualMachineConfigSpec
	switch req := call.req.(type) {
	case *types.CreateVM_Task:
		spec = &req.Config
	case *types.ReconfigVM_Task:
		spec = &req.Spec
	case *types.Destroy_Task:
		if call.this.Type == "VirtualMachine" {
			return in.destroyWithChains(w, r, call)
		}
		return false
	default:
		return false
	}
	children := childDiskSpecs(spec)
	if len(children) == 0 {
		return false
	}
	dc := entityDatacenter(call.this)
	if dc == nil {
		return false // the simulator answers for an unknown object
	}
	for _, i := range children {
		parent := spec.DeviceChange[i].GetVirtualDeviceConfigSpec().Device.GetVirtualDevice().Backing.(*types.VirtualDiskFlatVer2BackingInfo).Parent
		f, fault := resolveDisk(&dc.Self, parent.FileName)
		if fault == nil && !exists(f.descriptor) {
			fault = fileNotFound(parent.FileName)
		}
		if fault != nil {
			writeFailedTask(w, call, &types.InvalidDeviceSpec{
				InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.backing.parent.fileName"},
				DeviceIndex:     int32(i),
			}, fmt.Sprintf("Invalid configuration for device '%d'.", i))
			return true
		}
	}
	rec := httptest.NewRecorder()
	in.inner.ServeHTTP(rec, r)
	if task, ok := simulator.Map.Get(returnvalRef(rec.Body.Bytes())).(*simulator.Task); ok && task.Info.State == types.TaskInfoStateSuccess {
		vmRef := call.this
		if ref, ok := task.Info.Result.(types.ManagedObjectReference); ok {
			vmRef = ref
		}
		if vm, ok := simulator.Map.Get(vmRef).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() { writeChildDisks(vm, dc) })
		}
	}
	copyRecorded(w, rec)
	return true
}

// childDiskSpecs are the indexes of the device changes that add a disk with a parent.
func childDiskSpecs(spec *types.VirtualMachineConfigSpec) []int {
	var out []int
	for i, c := range spec.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		if s.Operation != types.VirtualDeviceConfigSpecOperationAdd || s.FileOperation != types.VirtualDeviceConfigSpecFileOperationCreate {
			continue
		}
		disk, ok := s.Device.(*types.VirtualDisk)
		if !ok {
			continue
		}
		if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
			out = append(out, i)
		}
	}
	return out
}

// writeChildDisks turns every child disk the simulator made (an empty descriptor
// and an empty -flat file) into a delta disk on its parent, and names its files in
// layoutEx as ESXi does.
func writeChildDisks(vm *simulator.VirtualMachine, dc *simulator.Datacenter) {
	for _, d := range object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || b.Parent == nil {
			continue
		}
		child, fault := resolveDisk(&dc.Self, b.FileName)
		if fault != nil {
			continue
		}
		if fi, err := os.Stat(child.descriptor); err != nil || fi.Size() != 0 {
			continue // not the simulator's empty file: written already
		}
		parent, fault := resolveDisk(&dc.Self, b.Parent.FileName)
		if fault != nil {
			continue
		}
		desc := newDeltaDescriptor(child, parent, b.Parent.FileName, disk.CapacityInKB*2)
		delta := strings.TrimSuffix(child.descriptor, ".vmdk") + "-delta.vmdk"
		if err := writeDeltaExtent(delta); err != nil {
			continue
		}
		if err := ioutil.WriteFile(child.descriptor, []byte(desc.String()), 0o600); err != nil {
			os.Remove(delta)
			continue
		}
		if fi, err := os.Stat(child.flat()); err == nil && fi.Size() == 0 {
			os.Remove(child.flat())
		}
		relayoutChild(vm, b.FileName, child.descriptor, delta)
	}
}

// newDeltaDescriptor is the descriptor ESXi writes for a delta disk on VMFS: one
// VMFSSPARSE extent of the parent's size, the parent's CID and where to find it.
func newDeltaDescriptor(child, parent diskFile, parentDSPath string, fallbackSectors int64) *descriptor {
	parentCID, sectors, adapter, hw := "ffffffff", fallbackSectors, "lsilogic", "13"
	if pd, _ := readDescriptor(parent); pd != nil {
		if v := pd.get("CID"); v != "" {
			parentCID = v
		}
		if exts := pd.extents(); len(exts) > 0 {
			sectors = 0
			for _, e := range exts {
				sectors += e.sectors
			}
		}
		if v := pd.get("ddb.adapterType"); v != "" {
			adapter = v
		}
		if v := pd.get("ddb.virtualHWVersion"); v != "" {
			hw = v
		}
	}
	text := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=%s
createType="vmfsSparse"
parentFileNameHint="%s"

# Extent description
RW %d VMFSSPARSE "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "%s"
ddb.virtualHWVersion = "%s"
`, rand.Uint32()|1, parentCID, parentHint(child, parent, parentDSPath), sectors,
		path.Base(strings.TrimSuffix(child.descriptor, ".vmdk")+"-delta.vmdk"), adapter, hw)
	d, _ := parseDescriptor(text)
	d.setGeometry(sectors)
	return d
}

// parentHint is how ESXi names the parent: its file name when beside the child,
// otherwise its absolute path under /vmfs/volumes/<datastore>.
func parentHint(child, parent diskFile, parentDSPath string) string {
	if path.Dir(child.descriptor) == path.Dir(parent.descriptor) {
		return path.Base(parent.descriptor)
	}
	var p object.DatastorePath
	p.FromString(parentDSPath)
	return "/vmfs/volumes/" + p.Datastore + "/" + strings.TrimPrefix(path.Clean("/"+p.Path), "/")
}

// writeDeltaExtent makes an empty COW sparse extent: a header sector with the
// "COWD" magic and no grain written (a new delta holds no data of its own).
func writeDeltaExtent(p string) error {
	header := make([]byte, 2048)
	copy(header, "COWD")
	header[4] = 1 // version
	return ioutil.WriteFile(p, header, 0o600)
}

// relayoutChild replaces, in layoutEx, the -flat extent the simulator listed for
// the child with its -delta extent, and gives both files their sizes.
func relayoutChild(vm *simulator.VirtualMachine, dsPath, descriptorFile, deltaFile string) {
	flatName := strings.TrimSuffix(dsPath, ".vmdk") + "-flat.vmdk"
	deltaName := strings.TrimSuffix(dsPath, ".vmdk") + "-delta.vmdk"
	for i := range vm.LayoutEx.File {
		f := &vm.LayoutEx.File[i]
		switch f.Name {
		case flatName:
			f.Name = deltaName
			f.Type = string(types.VirtualMachineFileLayoutExFileTypeDiskExtent)
			f.Size, f.UniqueSize = fileSize(deltaFile), fileSize(deltaFile)
		case dsPath:
			f.Size, f.UniqueSize = fileSize(descriptorFile), fileSize(descriptorFile)
		}
	}
}

func fileSize(p string) int64 {
	if fi, err := os.Stat(p); err == nil {
		return fi.Size()
	}
	return 0
}

// destroyWithChains runs Destroy_Task, then deletes the disks of the VM's chains
// that no other VM uses and that the simulator left (it deletes the VM's folder only).
func (in *injector) destroyWithChains(w http.ResponseWriter, r *http.Request, call soapCall) bool {
	vm, ok := simulator.Map.Get(call.this).(*simulator.VirtualMachine)
	if !ok || vm.Config == nil {
		return false
	}
	dc := entityDatacenter(call.this)
	if dc == nil {
		return false
	}
	var mine []string
	simulator.Map.WithLock(vm, func() { mine = chainFiles(vm) })
	if len(mine) == 0 {
		return false
	}
	others := map[string]bool{}
	for _, e := range simulator.Map.All("VirtualMachine") {
		other, ok := e.(*simulator.VirtualMachine)
		if !ok || other.Self == vm.Self {
			continue
		}
		simulator.Map.WithLock(other, func() {
			for _, f := range chainFiles(other) {
				others[f] = true
			}
		})
	}
	rec := httptest.NewRecorder()
	in.inner.ServeHTTP(rec, r)
	if task, ok := simulator.Map.Get(returnvalRef(rec.Body.Bytes())).(*simulator.Task); ok && task.Info.State == types.TaskInfoStateSuccess {
		for _, name := range mine {
			if others[name] {
				continue
			}
			if f, fault := resolveDisk(&dc.Self, name); fault == nil && exists(f.descriptor) {
				_ = deleteVirtualDisk(&types.DeleteVirtualDisk_Task{Name: name, Datacenter: &dc.Self})
			}
		}
	}
	copyRecorded(w, rec)
	return true
}

// chainFiles are the datastore paths of every disk in a VM's backing chains, normalised.
func chainFiles(vm *simulator.VirtualMachine) []string {
	var out []string
	if vm.Config == nil {
		return nil
	}
	for _, d := range object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		b, _ := d.(*types.VirtualDisk).Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		for ; b != nil; b = b.Parent {
			var p object.DatastorePath
			if p.FromString(b.FileName) {
				p.Path = strings.TrimPrefix(path.Clean("/"+p.Path), "/")
				out = append(out, p.String())
			}
		}
	}
	return out
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
