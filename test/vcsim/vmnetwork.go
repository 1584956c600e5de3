package main

import (
	"fmt"
	"net/http"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// A NIC whose standard backing names a network the VM's datacenter does not have.
// vCenter fails the task: InvalidDeviceSpec, "Invalid configuration for device 'N'."
// (N the index of the device change; the same fault it gives for a backing the host
// cannot provide). The simulator looks the name up and dereferences nothing: a nil
// pointer panic that closes the connection. The harness answers as vCenter does.

// serveNicBackings fails a CreateVM_Task / ReconfigVM_Task with such a NIC; false for
// every other call, which the caller passes on.
func (in *injector) serveNicBackings(w http.ResponseWriter, call soapCall) bool {
	var changes []types.BaseVirtualDeviceConfigSpec
	var dc *simulator.Datacenter
	switch req := call.req.(type) {
	case *types.CreateVM_Task:
		changes = req.Config.DeviceChange
		dc = entityDatacenter(call.this)
	case *types.ReconfigVM_Task:
		changes = req.Spec.DeviceChange
		dc = entityDatacenter(call.this)
	default:
		return false
	}
	if dc == nil {
		return false
	}
	for i, c := range changes {
		spec := c.GetVirtualDeviceConfigSpec()
		if spec.Operation == types.VirtualDeviceConfigSpecOperationRemove || spec.Device == nil {
			continue
		}
		nic, ok := spec.Device.(types.BaseVirtualEthernetCard)
		if !ok {
			continue
		}
		b, ok := nic.GetVirtualEthernetCard().Backing.(*types.VirtualEthernetCardNetworkBackingInfo)
		if !ok || networkInDatacenter(dc, b.DeviceName) {
			continue
		}
		writeFailedTask(w, call, &types.InvalidDeviceSpec{DeviceIndex: int32(i)}, fmt.Sprintf("Invalid configuration for device '%d'.", i))
		return true
	}
	return false
}

func networkInDatacenter(dc *simulator.Datacenter, name string) bool {
	for _, ref := range dc.Network {
		if n, ok := simulator.Map.Get(ref).(*mo.Network); ok && (n.Name == name || n.Entity().Name == name) {
			return true
		}
	}
	return false
}
