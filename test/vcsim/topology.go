package main

import (
	"context"
	"fmt"
	"io/ioutil"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

const maxVMs = 5000

// topology is the inventory the simulator starts with, on top of govmomi's VPX model.
type topology struct {
	Datacenters       int
	Clusters          int
	HostsPerCluster   int
	StandaloneHosts   int
	Datastores        int
	ClusterDatastores int
	LocalDatastores   int
	DVS               bool
	Uplinks           int
	DVPortgroups      int
	VMs               int
	VMsPerHost        int
	PowerOn           bool
	DRS               bool
}

// inventory describes what was built, for the ready line (tests and the demo read it).
type inventory struct {
	Datacenters []dcInventory `json:"datacenters"`
	VMs         int           `json:"vms"`
}

type dcInventory struct {
	Name            string             `json:"name"`
	Clusters        []clusterInventory `json:"clusters"`
	StandaloneHosts []string           `json:"standaloneHosts"`
	Datastores      []string           `json:"datastores"`
	Networks        []string           `json:"networks"`
	DVSwitches      []string           `json:"distributedSwitches"`
}

type clusterInventory struct {
	Name  string   `json:"name"`
	Hosts []string `json:"hosts"`
	DRS   bool     `json:"drs"`
}

func (t *topology) validate() error {
	nonNeg := map[string]int{
		"--clusters": t.Clusters, "--hosts": t.HostsPerCluster, "--standalone-hosts": t.StandaloneHosts,
		"--datastores": t.Datastores, "--cluster-datastores": t.ClusterDatastores, "--local-datastores": t.LocalDatastores,
		"--uplinks": t.Uplinks, "--dv-portgroups": t.DVPortgroups, "--vms": t.VMs, "--vms-per-host": t.VMsPerHost,
	}
	for name, v := range nonNeg {
		if v < 0 {
			return fmt.Errorf("%s %d: must be 0 or more", name, v)
		}
	}
	if t.Datacenters < 1 {
		return fmt.Errorf("--datacenters %d: must be 1 or more", t.Datacenters)
	}
	if t.VMs > 0 && t.VMsPerHost > 0 {
		return fmt.Errorf("--vms and --vms-per-host: give one or the other")
	}
	hosts := t.Datacenters * (t.Clusters*t.HostsPerCluster + t.StandaloneHosts)
	total := t.VMs + t.VMsPerHost*hosts
	if total > maxVMs {
		return fmt.Errorf("%d VMs in all: at most %d", total, maxVMs)
	}
	if total > 0 && hosts == 0 {
		return fmt.Errorf("VMs were asked for but there is no host to put them on")
	}
	if total > 0 && t.Datastores < 1 {
		return fmt.Errorf("VMs need --datastores 1 or more (they live on LocalDS_0)")
	}
	return nil
}

func (t *topology) applyToModel(m *simulator.Model) {
	m.Datacenter = t.Datacenters
	m.Cluster = t.Clusters
	m.ClusterHost = t.HostsPerCluster
	m.Host = t.StandaloneHosts
	m.Datastore = t.Datastores
	m.Machine = 0   // VMs are made by build(), spread over hosts
	m.Portgroup = 0 // the distributed switch is made by build(), with uplinks
	m.Autostart = false
}

// build adds to the created model what VPX() cannot express. The returned cleanup
// removes the temp folders backing the extra datastores.
func (t *topology) build(ctx context.Context, m *simulator.Model) (*inventory, func(), error) {
	var dirs []string
	cleanup := func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}
	mkdir := func(name string) (string, error) {
		d, err := ioutil.TempDir("", "vcsim-ds-"+name+"-")
		if err == nil {
			dirs = append(dirs, d)
		}
		return d, err
	}

	c, err := vim25.NewClient(ctx, m.Service)
	if err != nil {
		return nil, cleanup, err
	}
	finder := find.NewFinder(c, false)
	dcs, err := finder.DatacenterList(ctx, "*")
	if err != nil {
		return nil, cleanup, err
	}

	inv := &inventory{}
	var allHosts []*object.HostSystem
	var pools []*object.ResourcePool
	vmFolders := map[string]*object.Folder{}

	for _, dc := range dcs {
		finder.SetDatacenter(dc)
		folders, err := dc.Folders(ctx)
		if err != nil {
			return nil, cleanup, err
		}
		di := dcInventory{Name: dc.Name(), Clusters: []clusterInventory{}, StandaloneHosts: []string{}, DVSwitches: []string{}}
		var dcHosts []*object.HostSystem

		clusters, _ := finder.ClusterComputeResourceList(ctx, "*")
		for _, cl := range clusters {
			hosts, err := cl.Hosts(ctx)
			if err != nil {
				return nil, cleanup, err
			}
			ci := clusterInventory{Name: cl.Name(), Hosts: []string{}, DRS: t.DRS}
			setDRS(cl.Reference(), t.DRS)
			for i := 0; i < t.ClusterDatastores; i++ {
				name := fmt.Sprintf("%s_DS%d", cl.Name(), i)
				dir, err := mkdir(name)
				if err != nil {
					return nil, cleanup, err
				}
				if err := createDatastore(ctx, name, dir, hosts); err != nil {
					return nil, cleanup, err
				}
			}
			for _, h := range hosts {
				ci.Hosts = append(ci.Hosts, h.Name())
			}
			dcHosts = append(dcHosts, hosts...)
			di.Clusters = append(di.Clusters, ci)
		}

		standalone, _ := finder.ComputeResourceList(ctx, "*")
		for _, cr := range standalone {
			if cr.Reference().Type != "ComputeResource" {
				continue
			}
			hosts, err := cr.Hosts(ctx)
			if err != nil {
				return nil, cleanup, err
			}
			for _, h := range hosts {
				di.StandaloneHosts = append(di.StandaloneHosts, h.Name())
			}
			dcHosts = append(dcHosts, hosts...)
		}

		for _, h := range dcHosts {
			for i := 0; i < t.LocalDatastores; i++ {
				name := fmt.Sprintf("%s_local%d", h.Name(), i)
				dir, err := mkdir(name)
				if err != nil {
					return nil, cleanup, err
				}
				if err := createDatastore(ctx, name, dir, []*object.HostSystem{h}); err != nil {
					return nil, cleanup, err
				}
			}
			pool, err := h.ResourcePool(ctx)
			if err != nil {
				return nil, cleanup, err
			}
			allHosts = append(allHosts, h)
			pools = append(pools, pool)
			vmFolders[h.Reference().Value] = folders.VmFolder
		}

		if t.DVS {
			name, err := t.createDVS(ctx, folders.NetworkFolder, dc.Name(), dcHosts)
			if err != nil {
				return nil, cleanup, err
			}
			di.DVSwitches = append(di.DVSwitches, name)
		}

		dss, _ := finder.DatastoreList(ctx, "*")
		for _, ds := range dss {
			di.Datastores = append(di.Datastores, ds.Name())
			if strings.HasPrefix(ds.Name(), "LocalDS_") {
				// The model mounts LocalDS_n on every host but records one mount.
				shareDatastore(ds.Reference(), dcHosts)
			}
		}
		nets, _ := finder.NetworkList(ctx, "*")
		for _, n := range nets {
			di.Networks = append(di.Networks, path.Base(n.GetInventoryPath()))
		}
		inv.Datacenters = append(inv.Datacenters, di)
	}

	total := t.VMs
	if t.VMsPerHost > 0 {
		total = t.VMsPerHost * len(allHosts)
	}
	for i := 0; i < total; i++ {
		h := allHosts[i%len(allHosts)]
		name := fmt.Sprintf("%s_VM%d", h.Name(), i/len(allHosts))
		if err := createVM(ctx, c, vmFolders[h.Reference().Value], pools[i%len(allHosts)], h, name, t.PowerOn); err != nil {
			return nil, cleanup, fmt.Errorf("VM %s: %v", name, err)
		}
	}
	inv.VMs = total
	seedHostNetworking()
	return inv, cleanup, nil
}

// setDRS sets the cluster's DRS state directly: the simulator's reconfigure task
// does not apply drsConfig.
func setDRS(ref types.ManagedObjectReference, enabled bool) {
	cl := simulator.Map.Get(ref).(*simulator.ClusterComputeResource)
	cfg := cl.ConfigurationEx.(*types.ClusterConfigInfoEx)
	cfg.DrsConfig.Enabled = types.NewBool(enabled)
	if enabled {
		cfg.DrsConfig.DefaultVmBehavior = types.DrsBehaviorFullyAutomated
	} else {
		cfg.DrsConfig.DefaultVmBehavior = ""
	}
}

// createDatastore mounts one folder as the same datastore on every given host.
func createDatastore(ctx context.Context, name, dir string, hosts []*object.HostSystem) error {
	var dsRef *types.ManagedObjectReference
	for _, h := range hosts {
		dss, err := h.ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return err
		}
		ds, err := dss.CreateLocalDatastore(ctx, name, dir)
		if err != nil {
			return fmt.Errorf("datastore %s on %s: %v", name, h.Name(), err)
		}
		r := ds.Reference()
		dsRef = &r
	}
	if dsRef == nil {
		return nil
	}
	shareDatastore(*dsRef, hosts)
	return nil
}

// shareDatastore lists every host's mount of a datastore: each host's
// CreateLocalDatastore records only its own, where vCenter lists them all.
func shareDatastore(ref types.ManagedObjectReference, hosts []*object.HostSystem) {
	obj, ok := simulator.Map.Get(ref).(*simulator.Datastore)
	if !ok {
		return
	}
	dir := obj.Info.GetDatastoreInfo().Url
	// CreateLocalDatastore types a folder-backed datastore OTHER; a datastore vCenter
	// lists on ESXi hosts is VMFS (or NFS), and datastore selection refuses any other.
	obj.Summary.Type = string(types.HostFileSystemVolumeFileSystemTypeVMFS)
	var mounts []types.DatastoreHostMount
	for _, h := range hosts {
		mounts = append(mounts, types.DatastoreHostMount{
			Key: h.Reference(),
			MountInfo: types.HostMountInfo{
				Path:       dir,
				AccessMode: string(types.HostMountModeReadWrite),
				Mounted:    types.NewBool(true),
				Accessible: types.NewBool(true),
			},
		})
	}
	simulator.Map.Update(obj, []types.PropertyChange{{Name: "host", Val: mounts}})
}

func (t *topology) createDVS(ctx context.Context, folder *object.Folder, dcName string, hosts []*object.HostSystem) (string, error) {
	name := "DVS0"
	uplinks := make([]string, t.Uplinks)
	for i := range uplinks {
		uplinks[i] = fmt.Sprintf("uplink%d", i+1)
	}
	spec := types.DVSCreateSpec{ConfigSpec: &types.VMwareDVSConfigSpec{
		DVSConfigSpec: types.DVSConfigSpec{
			Name:             name,
			UplinkPortPolicy: &types.DVSNameArrayUplinkPortPolicy{UplinkPortName: uplinks},
		},
	}}
	task, err := folder.CreateDVS(ctx, spec)
	if err != nil {
		return "", err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return "", err
	}
	dvs := object.NewDistributedVirtualSwitch(folder.Client(), info.Result.(types.ManagedObjectReference))

	var members []types.DistributedVirtualSwitchHostMemberConfigSpec
	for _, h := range hosts {
		members = append(members, types.DistributedVirtualSwitchHostMemberConfigSpec{
			Operation: string(types.ConfigSpecOperationAdd),
			Host:      h.Reference(),
		})
	}
	if len(members) > 0 {
		task, err = dvs.Reconfigure(ctx, &types.DVSConfigSpec{Host: members})
		if err != nil {
			return "", err
		}
		if err := task.Wait(ctx); err != nil {
			return "", err
		}
	}

	for i := 0; i < t.DVPortgroups; i++ {
		task, err := dvs.AddPortgroup(ctx, []types.DVPortgroupConfigSpec{{
			Name: fmt.Sprintf("%s_DVPG%d", dcName, i),
			Type: string(types.DistributedVirtualPortgroupPortgroupTypeEarlyBinding),
		}})
		if err != nil {
			return "", err
		}
		if err := task.Wait(ctx); err != nil {
			return "", err
		}
	}
	return name, nil
}

func createVM(ctx context.Context, c *vim25.Client, folder *object.Folder, pool *object.ResourcePool, host *object.HostSystem, name string, powerOn bool) error {
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return err
	}
	devices = append(devices, scsi)
	disk := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{},
		"[LocalDS_0] "+path.Join(name, "disk1.vmdk"))
	disk.CapacityInKB = 1024
	devices = append(devices, disk)
	change, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:         name,
		GuestId:      string(types.VirtualMachineGuestOsIdentifierOtherGuest64),
		NumCPUs:      1,
		MemoryMB:     256,
		Files:        &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
		DeviceChange: change,
	}
	task, err := folder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return err
	}
	if powerOn {
		vm := object.NewVirtualMachine(c, info.Result.(types.ManagedObjectReference))
		task, err := vm.PowerOn(ctx)
		if err != nil {
			return err
		}
		return task.Wait(ctx)
	}
	return nil
}
