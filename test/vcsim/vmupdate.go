package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// Reconfiguring a VM in place as vCenter does, where the simulator differs (it
// applies any ReconfigVM_Task spec whatever the VM's state):
//   - CPU and memory while powered on: ReconfigVM_Task's reference (pyvmomi's
//     docs/vim/VirtualMachine.rst) raises InvalidPowerState "if the power state is
//     poweredOn and the virtual hardware cannot support the configuration changes":
//     more CPUs without cpuHotAddEnabled, fewer without cpuHotRemoveEnabled, another
//     numCoresPerSocket, more memory without memoryHotAddEnabled, less memory at all
//     (there is no memory hot remove), and a change of the hot-add flags themselves
//     ("This attribute can only be set when the virtual machine is powered-off",
//     ConfigSpec.cpuHotAddEnabled). The message is vCenter's for that fault: "The
//     attempted operation cannot be performed in the current state (Powered on)."
//     (pyvmomi-community-samples#265).
//   - A disk edited to a larger capacityInKB whose backing has a parent (a linked
//     clone's delta, a snapshot's redo log) is refused: InvalidDeviceOperation on the
//     device, "Invalid operation for device '0'. Disks with parents cannot be
//     expanded." (kubernetes-sigs/cluster-api-provider-vsphere#1189; knife-vsphere#433
//     shows the fault type). Otherwise vCenter extends the disk's file in the task;
//     the simulator only records the number, so the harness grows the extent and the
//     descriptor as ExtendVirtualDisk_Task does, and both capacity fields read back.
//   - extraConfig: ConfigSpec.extraConfig's reference (docs/vim/vm/ConfigSpec.rst),
//     "If the key is already present, it will be reset with the new value provided.
//     Otherwise, a new option is added. Keys with empty values will be removed." The
//     simulator appends every entry, so a key set twice read back twice and an empty
//     value stayed.
//   - CopyVirtualDisk_Task of a delta disk writes one standalone disk with the
//     chain's content (ESXi consolidates the chain; Nova's vmops._resize_disk copies a
//     linked clone's disk this way before it extends it). The simulator copies
//     <n>-flat.vmdk, which a delta has not: FileNotFound. The harness writes deltas
//     without grains (childdisk.go), so the copy is the chain's base disk; a delta
//     holding data is NotSupported rather than copied wrong.

// serveVmUpdate corrects ReconfigVM_Task and the copy of a delta disk; false for
// every other call (and for a reconfigure with nothing to correct).
func (in *injector) serveVmUpdate(w http.ResponseWriter, r *http.Request, call soapCall) bool {
	switch req := call.req.(type) {
	case *types.ReconfigVM_Task:
		return in.reconfigure(w, r, call, &req.Spec)
	case *types.CopyVirtualDisk_Task:
		if !isDeltaDisk(req.SourceDatacenter, req.SourceName) {
			return false
		}
		in.ownTask(w, r, call, func() (types.AnyType, types.BaseMethodFault) {
			return nil, consolidatedCopy(req)
		})
		return true
	}
	return false
}

// grownDisk is a flat disk a reconfigure makes larger.
type grownDisk struct {
	key      int32
	fileName string
	newKb    int64
}

func (in *injector) reconfigure(w http.ResponseWriter, r *http.Request, call soapCall, spec *types.VirtualMachineConfigSpec) bool {
	vm, ok := simulator.Map.Get(call.this).(*simulator.VirtualMachine)
	if !ok || vm.Config == nil {
		return false
	}
	var fault types.BaseMethodFault
	var message string
	var grown []grownDisk
	var before []types.BaseOptionValue
	simulator.Map.WithLock(vm, func() {
		if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn && hotChangeRefused(vm, spec) {
			fault = &types.InvalidPowerState{
				RequestedState: types.VirtualMachinePowerStatePoweredOff,
				ExistingState:  types.VirtualMachinePowerStatePoweredOn,
			}
			message = "The attempted operation cannot be performed in the current state (Powered on)."
			return
		}
		grown, fault, message = diskGrowth(vm, spec)
		before = append([]types.BaseOptionValue(nil), vm.Config.ExtraConfig...)
	})
	if fault != nil {
		writeFailedTask(w, call, fault, message)
		return true
	}
	if len(spec.ExtraConfig) == 0 && len(grown) == 0 {
		return false
	}
	dc := entityDatacenter(call.this)
	rec := httptest.NewRecorder()
	if !in.serveChildDisks(rec, r, call) {
		in.inner.ServeHTTP(rec, r)
	}
	if task, ok := simulator.Map.Get(returnvalRef(rec.Body.Bytes())).(*simulator.Task); ok && task.Info.State == types.TaskInfoStateSuccess {
		simulator.Map.WithLock(vm, func() {
			if len(spec.ExtraConfig) > 0 {
				simulator.Map.Update(vm, []types.PropertyChange{{Name: "config.extraConfig", Val: mergeExtraConfig(before, spec.ExtraConfig)}})
			}
			for _, g := range grown {
				setCapacity(vm, g)
			}
		})
		for _, g := range grown {
			if dc != nil {
				_ = extendVirtualDisk(&types.ExtendVirtualDisk_Task{Name: g.fileName, Datacenter: &dc.Self, NewCapacityKb: g.newKb})
			}
		}
	}
	copyRecorded(w, rec)
	return true
}

// hotChangeRefused: a change of the running VM's virtual hardware that vCenter makes
// only while it is powered off.
func hotChangeRefused(vm *simulator.VirtualMachine, spec *types.VirtualMachineConfigSpec) bool {
	hw := vm.Config.Hardware
	if n := spec.NumCPUs; n != 0 && n != hw.NumCPU {
		if n > hw.NumCPU && !isSet(vm.Config.CpuHotAddEnabled) || n < hw.NumCPU && !isSet(vm.Config.CpuHotRemoveEnabled) {
			return true
		}
	}
	cores := hw.NumCoresPerSocket
	if cores == 0 {
		cores = 1
	}
	if spec.NumCoresPerSocket != 0 && spec.NumCoresPerSocket != cores {
		return true
	}
	if m := spec.MemoryMB; m != 0 && m != int64(hw.MemoryMB) {
		if m < int64(hw.MemoryMB) || !isSet(vm.Config.MemoryHotAddEnabled) {
			return true
		}
	}
	for _, f := range []struct{ want, have *bool }{
		{spec.CpuHotAddEnabled, vm.Config.CpuHotAddEnabled},
		{spec.CpuHotRemoveEnabled, vm.Config.CpuHotRemoveEnabled},
		{spec.MemoryHotAddEnabled, vm.Config.MemoryHotAddEnabled},
	} {
		if f.want != nil && *f.want != isSet(f.have) {
			return true
		}
	}
	return false
}

func isSet(b *bool) bool { return b != nil && *b }

// diskGrowth finds the disks an edit makes larger; a fault for one with a parent.
func diskGrowth(vm *simulator.VirtualMachine, spec *types.VirtualMachineConfigSpec) ([]grownDisk, types.BaseMethodFault, string) {
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	var out []grownDisk
	for i, c := range spec.DeviceChange {
		s := c.GetVirtualDeviceConfigSpec()
		disk, ok := s.Device.(*types.VirtualDisk)
		if s.Operation != types.VirtualDeviceConfigSpecOperationEdit || !ok {
			continue
		}
		current, ok := devices.FindByKey(disk.Key).(*types.VirtualDisk)
		if !ok {
			continue // the simulator answers for a device that is not there
		}
		newKb := capacityKb(disk)
		if newKb <= capacityKb(current) {
			continue
		}
		b, ok := current.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok {
			continue
		}
		if b.Parent != nil {
			return nil, &types.InvalidDeviceOperation{InvalidDeviceSpec: types.InvalidDeviceSpec{
				InvalidVmConfig: types.InvalidVmConfig{Property: "virtualDeviceSpec.device.capacityInKB"},
				DeviceIndex:     int32(i),
			}}, fmt.Sprintf("Invalid operation for device '%d'. Disks with parents cannot be expanded.", i)
		}
		out = append(out, grownDisk{key: disk.Key, fileName: b.FileName, newKb: newKb})
	}
	return out, nil, ""
}

// capacityKb is a disk's size as a spec or a read gives it: the larger of its two
// fields (a client may change either and send the other as it read it).
func capacityKb(d *types.VirtualDisk) int64 {
	kb := d.CapacityInKB
	if b := d.CapacityInBytes / 1024; b > kb {
		kb = b
	}
	return kb
}

// setCapacity makes both capacity fields of the edited disk say its new size, as
// vCenter reports a disk it extended.
func setCapacity(vm *simulator.VirtualMachine, g grownDisk) {
	if d, ok := object.VirtualDeviceList(vm.Config.Hardware.Device).FindByKey(g.key).(*types.VirtualDisk); ok {
		d.CapacityInKB = g.newKb
		d.CapacityInBytes = g.newKb * 1024
	}
}

// mergeExtraConfig applies a spec's extraConfig to the entries a VM had: a key
// present takes the new value, a new key is added, an empty value removes the key.
// Keys the simulator maps onto guest properties (SET.*, ip0) are not stored.
func mergeExtraConfig(before, changes []types.BaseOptionValue) []types.BaseOptionValue {
	out := make([]types.BaseOptionValue, 0, len(before)+len(changes))
	index := map[string]int{}
	for _, o := range before {
		key := o.GetOptionValue().Key
		if i, dup := index[key]; dup {
			out[i] = o // an earlier duplicate: the last value stands
			continue
		}
		index[key] = len(out)
		out = append(out, o)
	}
	removed := map[string]bool{}
	for _, c := range changes {
		v := c.GetOptionValue()
		if strings.HasPrefix(v.Key, "SET.") || v.Key == "ip0" {
			continue
		}
		if s, isString := v.Value.(string); v.Value == nil || isString && s == "" {
			removed[v.Key] = true
			continue
		}
		delete(removed, v.Key)
		if i, ok := index[v.Key]; ok {
			out[i] = &types.OptionValue{Key: v.Key, Value: v.Value}
			continue
		}
		index[v.Key] = len(out)
		out = append(out, &types.OptionValue{Key: v.Key, Value: v.Value})
	}
	kept := out[:0]
	for _, o := range out {
		if !removed[o.GetOptionValue().Key] {
			kept = append(kept, o)
		}
	}
	return kept
}

// isDeltaDisk: a descriptor that names a parent (childdisk.go writes them so).
func isDeltaDisk(dc *types.ManagedObjectReference, name string) bool {
	f, fault := resolveDisk(dc, name)
	if fault != nil {
		return false
	}
	d, _ := readDescriptor(f)
	return d != nil && d.get("parentFileNameHint") != ""
}

// consolidatedCopy copies a delta disk as one standalone disk: its chain followed
// down to the base, whose content (the deltas add none) is copied to the destination.
func consolidatedCopy(req *types.CopyVirtualDisk_Task) types.BaseMethodFault {
	cur, fault := resolveDisk(req.SourceDatacenter, req.SourceName)
	if fault != nil {
		return fault
	}
	for depth := 0; ; depth++ {
		d, fault := readDescriptor(cur)
		if fault != nil {
			return fault
		}
		hint := ""
		if d != nil {
			hint = d.get("parentFileNameHint")
		}
		if hint == "" {
			break
		}
		exts := d.extents()
		if depth > 32 || len(exts) != 1 || exts[0].kind != "VMFSSPARSE" {
			return &types.NotSupported{}
		}
		if fileSize(path.Join(path.Dir(cur.descriptor), exts[0].file)) > deltaHeaderBytes {
			return &types.NotSupported{} // grains written: the harness cannot merge them
		}
		parent := parentDSPath(cur.dsPath, hint)
		if cur, fault = resolveDisk(req.SourceDatacenter, parent); fault != nil {
			return fault
		}
		if !exists(cur.descriptor) {
			return fileNotFound(parent)
		}
	}
	return copyVirtualDisk(req.SourceDatacenter, cur.dsPath, req.DestDatacenter, req.DestName, copyOptions{})
}

// deltaHeaderBytes is the size of the empty delta extent childdisk.go writes.
const deltaHeaderBytes = 2048

// parentDSPath turns a delta's parentFileNameHint into a datastore path: a name
// beside the child, or /vmfs/volumes/<datastore>/<path>.
func parentDSPath(child, hint string) string {
	if rest := strings.TrimPrefix(hint, "/vmfs/volumes/"); rest != hint {
		parts := strings.SplitN(rest, "/", 2)
		if len(parts) == 2 {
			return fmt.Sprintf("[%s] %s", parts[0], parts[1])
		}
	}
	var p object.DatastorePath
	p.FromString(child)
	p.Path = path.Join(path.Dir(p.Path), hint)
	return p.String()
}
