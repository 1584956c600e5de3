package main

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Host networking as vCenter does it, where govmomi's simulator (0.24) differs:
// a standard port group of one name on several hosts is one Network object
// (the simulator refuses the second host with DuplicateName), UpdatePortGroup
// exists, RemovePortGroup keeps the Network while another host still has the port
// group and removes it with the last one, HostSystem.config.network follows the
// changes as networkInfo does, UpdatePortGroup stores the spec's policy as sent,
// and a host's networkInfo lists its physical NICs and which vSwitch uses
// them (vmnic0 on vSwitch0, vmnic1 on vSwitch1), as Nova's vlan_interface needs.

var networkMu sync.Mutex

// lateNetworks are Network objects made by an AddPortGroup under a lateNetwork rule
// and not listed yet. vCenter makes a standard port group's Network when it syncs
// the host's change into its inventory, which can be a moment after AddPortGroup
// returned: until then no host, cluster, datacenter or folder lists it (though the
// host's networkInfo already has the port group). Guarded by networkMu.
var lateNetworks = map[types.ManagedObjectReference]*lateNetwork{}

type lateNetwork struct {
	folder *simulator.Folder
	// compute resources whose hosts got the port group while it was unlisted
	computes []mo.Entity
}

// listLate lists a late Network everywhere vCenter lists one: the network folder,
// the datacenter, and each host (and its compute resource) that still has it.
func listLate(ref types.ManagedObjectReference) {
	networkMu.Lock()
	defer networkMu.Unlock()
	late, ok := lateNetworks[ref]
	if !ok {
		return // removed from its last host before it was listed
	}
	delete(lateNetworks, ref)
	network, ok := simulator.Map.Get(ref).(*mo.Network)
	if !ok {
		return
	}
	simulator.Map.AddReference(late.folder, &late.folder.ChildEntity, ref)
	if dc := datacenterOf(late.folder); dc != nil {
		simulator.Map.AddReference(dc, &dc.Network, ref)
	}
	for _, h := range network.Host {
		if host, ok := simulator.Map.Get(h).(*simulator.HostSystem); ok {
			simulator.Map.AddReference(host, &host.Network, ref)
		}
	}
	for _, compute := range late.computes {
		addComputeNetwork(compute, ref)
	}
}

func addComputeNetwork(compute mo.Entity, ref types.ManagedObjectReference) {
	switch cr := compute.(type) {
	case *simulator.ClusterComputeResource:
		simulator.Map.AddReference(cr, &cr.Network, ref)
	case *mo.ComputeResource:
		simulator.Map.AddReference(cr, &cr.Network, ref)
	}
}

// seedHostNetworking gives every host's network system the vSwitches and
// physical NICs of a small ESXi host.
func seedHostNetworking() {
	for _, obj := range simulator.Map.All("HostSystem") {
		host := obj.(*simulator.HostSystem)
		ns, ok := simulator.Map.Get(*host.ConfigManager.NetworkSystem).(*simulator.HostNetworkSystem)
		if !ok || ns.NetworkInfo == nil {
			continue
		}
		var pnics []types.PhysicalNic
		if host.Config != nil && host.Config.Network != nil {
			pnics = append(pnics, host.Config.Network.Pnic...)
		}
		if len(pnics) < 2 {
			pnics = []types.PhysicalNic{
				{Key: "key-vim.host.PhysicalNic-vmnic0", Device: "vmnic0", Driver: "vmxnet3"},
				{Key: "key-vim.host.PhysicalNic-vmnic1", Device: "vmnic1", Driver: "vmxnet3"},
			}
		}
		ns.NetworkInfo.Pnic = pnics
		for i := range ns.NetworkInfo.Vswitch {
			if ns.NetworkInfo.Vswitch[i].Name == "vSwitch0" {
				ns.NetworkInfo.Vswitch[i].Key = "key-vim.host.VirtualSwitch-vSwitch0"
				ns.NetworkInfo.Vswitch[i].NumPorts = 128
				ns.NetworkInfo.Vswitch[i].Pnic = []string{pnics[0].Key}
			}
		}
		ns.NetworkInfo.Vswitch = append(ns.NetworkInfo.Vswitch, types.HostVirtualSwitch{
			Name:     "vSwitch1",
			Key:      "key-vim.host.VirtualSwitch-vSwitch1",
			NumPorts: 128,
			Pnic:     []string{pnics[1].Key},
		})
		// vCenter reports a host's networking twice: HostNetworkSystem.networkInfo
		// and HostSystem.config.network. One shared HostNetworkInfo keeps them the
		// same through AddPortGroup / UpdatePortGroup / RemovePortGroup (the host's
		// vNICs and netstacks are kept).
		if host.Config != nil && host.Config.Network != nil {
			shared := host.Config.Network
			shared.Vswitch = ns.NetworkInfo.Vswitch
			shared.Portgroup = ns.NetworkInfo.Portgroup
			shared.Pnic = ns.NetworkInfo.Pnic
			ns.NetworkInfo = shared
		}
	}
}

// serveNetwork handles the host networking methods; false for every other method.
// With late > 0, an AddPortGroup that makes a new Network lists it only that much later.
func serveNetwork(w http.ResponseWriter, call soapCall, body []byte, late time.Duration) bool {
	switch call.method {
	case "AddPortGroup", "UpdatePortGroup", "RemovePortGroup":
	default:
		return false
	}
	method, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		writeFault(w, &types.InvalidRequest{}, err.Error())
		return true
	}
	ns, ok := simulator.Map.Get(call.this).(*simulator.HostNetworkSystem)
	if !ok {
		writeFault(w, &types.ManagedObjectNotFound{Obj: call.this}, fmt.Sprintf("managed object not found: %s", call.this))
		return true
	}
	networkMu.Lock()
	defer networkMu.Unlock()
	var fault types.BaseMethodFault
	switch req := method.Body.(type) {
	case *types.AddPortGroup:
		fault = addPortGroup(ns, req.Portgrp, late)
	case *types.UpdatePortGroup:
		fault = updatePortGroup(ns, req.PgName, req.Portgrp)
	case *types.RemovePortGroup:
		fault = removePortGroup(ns, req.PgName)
	}
	if fault != nil {
		writeFault(w, fault, "")
		return true
	}
	writeResponse(w, call.method, "")
	return true
}

func findVswitch(ns *simulator.HostNetworkSystem, name string) *types.HostVirtualSwitch {
	for i := range ns.NetworkInfo.Vswitch {
		if ns.NetworkInfo.Vswitch[i].Name == name {
			return &ns.NetworkInfo.Vswitch[i]
		}
	}
	return nil
}

func findPortGroup(ns *simulator.HostNetworkSystem, name string) int {
	for i, pg := range ns.NetworkInfo.Portgroup {
		if pg.Spec.Name == name {
			return i
		}
	}
	return -1
}

func removeString(list []string, s string) []string {
	out := list[:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// hostContext finds the host's datacenter network folder and its compute resource.
func hostContext(host *mo.HostSystem) (*simulator.Folder, mo.Entity) {
	var compute mo.Entity
	ref := host.Parent
	for ref != nil {
		obj := simulator.Map.Get(*ref)
		switch o := obj.(type) {
		case *simulator.ClusterComputeResource, *mo.ComputeResource:
			if compute == nil {
				compute = o.(mo.Entity)
			}
		case *simulator.Datacenter:
			folder, _ := simulator.Map.Get(o.NetworkFolder).(*simulator.Folder)
			return folder, compute
		}
		e, ok := obj.(mo.Entity)
		if !ok {
			return nil, compute
		}
		ref = e.Entity().Parent
	}
	return nil, compute
}

func networkByName(folder *simulator.Folder, name string) mo.Reference {
	for ref, late := range lateNetworks {
		if n, ok := simulator.Map.Get(ref).(*mo.Network); ok && late.folder == folder && n.Name == name {
			return n
		}
	}
	for _, ref := range folder.ChildEntity {
		obj := simulator.Map.Get(ref)
		if n, ok := obj.(*mo.Network); ok && n.Name == name {
			return obj
		}
		if e, ok := obj.(mo.Entity); ok && e.Entity().Name == name {
			return obj
		}
	}
	return nil
}

// checkSpec refuses what ESXi refuses in a port group spec, and finds its vSwitch.
func checkSpec(ns *simulator.HostNetworkSystem, spec types.HostPortGroupSpec) (*types.HostVirtualSwitch, types.BaseMethodFault) {
	if spec.Name == "" {
		return nil, &types.InvalidArgument{InvalidProperty: "portgrp.name"}
	}
	if spec.VlanId < 0 || spec.VlanId > 4095 {
		return nil, &types.InvalidArgument{InvalidProperty: "portgrp.vlanId"}
	}
	vs := findVswitch(ns, spec.VswitchName)
	if vs == nil {
		return nil, &types.NotFound{}
	}
	return vs, nil
}

func addPortGroup(ns *simulator.HostNetworkSystem, spec types.HostPortGroupSpec, late time.Duration) types.BaseMethodFault {
	vs, fault := checkSpec(ns, spec)
	if fault != nil {
		return fault
	}
	if findPortGroup(ns, spec.Name) >= 0 {
		return &types.AlreadyExists{Name: spec.Name}
	}
	folder, compute := hostContext(ns.Host)
	if folder == nil {
		return &types.RuntimeFault{}
	}
	var netRef types.ManagedObjectReference
	switch existing := networkByName(folder, spec.Name).(type) {
	case nil:
		network := &mo.Network{}
		// mo.Network has a name field of its own besides ManagedEntity's: set both,
		// so the next host's AddPortGroup finds this Network by name.
		network.Name = spec.Name
		network.Entity().Name = spec.Name
		network.Summary = &types.NetworkSummary{Name: spec.Name, Accessible: true}
		simulator.Map.PutEntity(folder, simulator.Map.NewEntity(network))
		network.Summary.GetNetworkSummary().Network = &network.Self
		if late > 0 {
			lateNetworks[network.Self] = &lateNetwork{folder: folder}
			ref := network.Self
			time.AfterFunc(late, func() { listLate(ref) })
		} else {
			simulator.Map.AddReference(folder, &folder.ChildEntity, network.Self)
			if dc := datacenterOf(folder); dc != nil {
				simulator.Map.AddReference(dc, &dc.Network, network.Self)
			}
		}
		netRef = network.Self
	case *mo.Network:
		netRef = existing.Self
	default:
		return &types.DuplicateName{Name: spec.Name, Object: existing.Reference()}
	}
	if network, ok := simulator.Map.Get(netRef).(*mo.Network); ok {
		simulator.Map.AddReference(network, &network.Host, ns.Host.Self)
	}
	if pending, ok := lateNetworks[netRef]; ok {
		// Not listed yet: the host and its compute resource list it when it is.
		pending.computes = append(pending.computes, compute)
	} else {
		if host, ok := simulator.Map.Get(ns.Host.Self).(*simulator.HostSystem); ok {
			simulator.Map.AddReference(host, &host.Network, netRef)
		}
		addComputeNetwork(compute, netRef)
	}
	vs.Portgroup = append(vs.Portgroup, spec.Name)
	ns.NetworkInfo.Portgroup = append(ns.NetworkInfo.Portgroup, types.HostPortGroup{
		Key:            "key-vim.host.PortGroup-" + spec.Name,
		Spec:           spec,
		Vswitch:        vs.Key,
		ComputedPolicy: spec.Policy,
	})
	return nil
}

func updatePortGroup(ns *simulator.HostNetworkSystem, name string, spec types.HostPortGroupSpec) types.BaseMethodFault {
	i := findPortGroup(ns, name)
	if i < 0 {
		return &types.NotFound{}
	}
	if spec.Name != name {
		return &types.InvalidArgument{InvalidProperty: "portgrp.name"}
	}
	to, fault := checkSpec(ns, spec)
	if fault != nil {
		return fault
	}
	from := ns.NetworkInfo.Portgroup[i].Spec.VswitchName
	if from != spec.VswitchName {
		if vs := findVswitch(ns, from); vs != nil {
			vs.Portgroup = removeString(vs.Portgroup, name)
		}
		to.Portgroup = append(to.Portgroup, name)
	}
	// ESXi replaces the whole spec: a policy left out of the request resets the
	// port group's security, teaming and shaping overrides.
	ns.NetworkInfo.Portgroup[i].Spec = spec
	ns.NetworkInfo.Portgroup[i].ComputedPolicy = spec.Policy
	ns.NetworkInfo.Portgroup[i].Vswitch = to.Key
	return nil
}

func removePortGroup(ns *simulator.HostNetworkSystem, name string) types.BaseMethodFault {
	i := findPortGroup(ns, name)
	if i < 0 {
		return &types.NotFound{}
	}
	folder, compute := hostContext(ns.Host)
	var network *mo.Network
	if folder != nil {
		network, _ = networkByName(folder, name).(*mo.Network)
	}
	if network != nil {
		// ESXi refuses while a powered-on VM on this host has a NIC on the port group.
		syncNetworkVms()
		for _, vmRef := range network.Vm {
			if vm, ok := simulator.Map.Get(vmRef).(*simulator.VirtualMachine); ok && vm.Runtime.Host != nil && *vm.Runtime.Host == ns.Host.Self &&
				vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
				return &types.ResourceInUse{Type: "Network", Name: name}
			}
		}
	}
	if vs := findVswitch(ns, ns.NetworkInfo.Portgroup[i].Spec.VswitchName); vs != nil {
		vs.Portgroup = removeString(vs.Portgroup, name)
	}
	ns.NetworkInfo.Portgroup = append(ns.NetworkInfo.Portgroup[:i], ns.NetworkInfo.Portgroup[i+1:]...)
	if network == nil {
		return nil
	}
	simulator.Map.RemoveReference(network, &network.Host, ns.Host.Self)
	if host, ok := simulator.Map.Get(ns.Host.Self).(*simulator.HostSystem); ok {
		simulator.Map.RemoveReference(host, &host.Network, network.Self)
	}
	stillUsed := false
	if cl, ok := compute.(*simulator.ClusterComputeResource); ok {
		for _, h := range cl.Host {
			if h != ns.Host.Self && containsRef(network.Host, h) {
				stillUsed = true
			}
		}
		if !stillUsed {
			simulator.Map.RemoveReference(cl, &cl.Network, network.Self)
		}
	}
	if len(network.Host) == 0 {
		simulator.Map.RemoveReference(folder, &folder.ChildEntity, network.Self)
		if dc := datacenterOf(folder); dc != nil {
			simulator.Map.RemoveReference(dc, &dc.Network, network.Self)
		}
		simulator.Map.Remove(network.Self)
		delete(lateNetworks, network.Self)
	}
	return nil
}

func containsRef(list []types.ManagedObjectReference, ref types.ManagedObjectReference) bool {
	for _, r := range list {
		if r == ref {
			return true
		}
	}
	return false
}

// syncNetworkVms fills each network's vm list from the VMs' network lists, as
// vCenter keeps it (the simulator only updates the VM side).
func syncNetworkVms() {
	users := map[types.ManagedObjectReference][]types.ManagedObjectReference{}
	for _, obj := range simulator.Map.All("VirtualMachine") {
		vm := obj.(*simulator.VirtualMachine)
		for _, n := range vm.Network {
			users[n] = append(users[n], vm.Self)
		}
	}
	for _, obj := range simulator.Map.All("Network") {
		if n, ok := obj.(*mo.Network); ok {
			n.Vm = users[n.Self]
		}
	}
	for _, obj := range simulator.Map.All("DistributedVirtualPortgroup") {
		if pg, ok := obj.(*simulator.DistributedVirtualPortgroup); ok {
			pg.Vm = users[pg.Self]
		}
	}
}

func datacenterOf(folder *simulator.Folder) *simulator.Datacenter {
	ref := folder.Parent
	for ref != nil {
		obj := simulator.Map.Get(*ref)
		if dc, ok := obj.(*simulator.Datacenter); ok {
			return dc
		}
		e, ok := obj.(mo.Entity)
		if !ok {
			return nil
		}
		ref = e.Entity().Parent
	}
	return nil
}
