package main

import (
	"io"
	"io/ioutil"
	"os"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// VirtualDiskManager methods as vCenter runs them, where the simulator differs:
// CreateVirtualDisk_Task writes a real descriptor and a -flat extent of the asked
// capacity (the simulator makes two empty files), and ExtendVirtualDisk_Task exists
// (the simulator has no such method).

// diskFile is a disk named by datastore path, resolved to the local files.
type diskFile struct {
	dsPath     string // "[ds] dir/name.vmdk", as the client wrote it
	descriptor string // local path of name.vmdk
}

// flat is the local path of the disk's -flat extent, named as ESXi names it.
func (f diskFile) flat() string { return strings.TrimSuffix(f.descriptor, ".vmdk") + "-flat.vmdk" }

// resolveDisk finds the local file behind a datastore path in a datacenter.
func resolveDisk(dc *types.ManagedObjectReference, name string) (diskFile, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(name) || p.Path == "" {
		return diskFile{}, &types.InvalidArgument{InvalidProperty: "name"}
	}
	if dc == nil {
		// On vCenter a datastore path needs its datacenter.
		return diskFile{}, &types.InvalidArgument{InvalidProperty: "datacenter"}
	}
	d, ok := simulator.Map.Get(*dc).(*simulator.Datacenter)
	if !ok {
		return diskFile{}, &types.ManagedObjectNotFound{Obj: *dc}
	}
	ds := findDatastoreIn(d.DatastoreFolder, p.Datastore)
	if ds == nil {
		return diskFile{}, &types.InvalidDatastore{Name: p.Datastore}
	}
	dir := ds.Info.GetDatastoreInfo().Url
	local := path.Join(dir, p.Path)
	if !strings.HasPrefix(local, dir+"/") {
		return diskFile{}, &types.InvalidArgument{InvalidProperty: "name"}
	}
	return diskFile{dsPath: name, descriptor: local}, nil
}

func fileNotFound(dsPath string) *types.FileNotFound {
	return &types.FileNotFound{FileFault: types.FileFault{File: dsPath}}
}

func fileExists(dsPath string) *types.FileAlreadyExists {
	return &types.FileAlreadyExists{FileFault: types.FileFault{File: dsPath}}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// flatDiskTypes are the VirtualDiskType values whose disk is a descriptor and one
// -flat extent.
var flatDiskTypes = map[string]bool{"preallocated": true, "thin": true, "thick": true, "eagerZeroedThick": true}

func createVirtualDisk(req *types.CreateVirtualDisk_Task) types.BaseMethodFault {
	spec, ok := req.Spec.(*types.FileBackedVirtualDiskSpec)
	if !ok || spec.CapacityKb <= 0 {
		return &types.InvalidArgument{InvalidProperty: "spec"}
	}
	if !flatDiskTypes[spec.DiskType] {
		return &types.NotSupported{}
	}
	f, fault := resolveDisk(req.Datacenter, req.Name)
	if fault != nil {
		return fault
	}
	if !strings.HasSuffix(f.descriptor, ".vmdk") {
		return &types.InvalidArgument{InvalidProperty: "name"}
	}
	if !exists(path.Dir(f.descriptor)) {
		return fileNotFound(f.dsPath)
	}
	if exists(f.descriptor) || exists(f.flat()) {
		return fileExists(f.dsPath)
	}
	sectors := spec.CapacityKb * 2
	d := newFlatDescriptor(path.Base(f.flat()), sectors, descriptorAdapter(spec.AdapterType), spec.DiskType == "thin", "13")
	if err := writeFlat(f.flat(), sectors*512); err != nil {
		return &types.CannotCreateFile{FileFault: types.FileFault{File: f.dsPath}}
	}
	if err := ioutil.WriteFile(f.descriptor, []byte(d.String()), 0o600); err != nil {
		os.Remove(f.flat())
		return &types.CannotCreateFile{FileFault: types.FileFault{File: f.dsPath}}
	}
	return nil
}

// writeFlat makes an all-zero extent of size bytes (sparse on the host: no cost).
func writeFlat(p string, size int64) error {
	out, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		os.Remove(p)
		return err
	}
	return out.Close()
}

// readDescriptor reads a disk's text descriptor: FileNotFound without one, nil
// (and no fault) for a descriptor the simulator made empty.
func readDescriptor(f diskFile) (*descriptor, types.BaseMethodFault) {
	data, err := ioutil.ReadFile(f.descriptor)
	if err != nil {
		return nil, fileNotFound(f.dsPath)
	}
	if len(data) == 0 {
		return nil, nil
	}
	d, err := parseDescriptor(string(data))
	if err != nil {
		return nil, &types.NotSupported{}
	}
	return d, nil
}

// extendVirtualDisk grows the flat extent and the descriptor's extent size (and
// geometry) to newCapacityKb. Shrinking is refused: the API offers no way to make a
// disk smaller (ESXi answers InvalidArgument on the capacity; this is our reading).
func extendVirtualDisk(req *types.ExtendVirtualDisk_Task) types.BaseMethodFault {
	f, fault := resolveDisk(req.Datacenter, req.Name)
	if fault != nil {
		return fault
	}
	d, fault := readDescriptor(f)
	if fault != nil {
		return fault
	}
	sectors := req.NewCapacityKb * 2
	flat := f.flat()
	var ext extent
	if d != nil {
		exts := d.extents()
		if len(exts) != 1 || (exts[0].kind != "VMFS" && exts[0].kind != "FLAT") {
			return &types.NotSupported{}
		}
		ext = exts[0]
		flat = path.Join(path.Dir(f.descriptor), ext.file)
	}
	fi, err := os.Stat(flat)
	if err != nil {
		return fileNotFound(f.dsPath)
	}
	current := fi.Size() / 512
	if d != nil {
		current = ext.sectors
	}
	if req.NewCapacityKb <= 0 || sectors < current {
		return &types.InvalidArgument{InvalidProperty: "newCapacityKb"}
	}
	if sectors == current {
		return nil
	}
	if err := os.Truncate(flat, sectors*512); err != nil {
		return &types.CannotAccessFile{FileFault: types.FileFault{File: f.dsPath}}
	}
	if d == nil {
		return nil
	}
	ext.sectors = sectors
	d.setExtent(ext)
	d.setGeometry(sectors)
	if err := ioutil.WriteFile(f.descriptor, []byte(d.String()), 0o600); err != nil {
		return &types.CannotAccessFile{FileFault: types.FileFault{File: f.dsPath}}
	}
	return nil
}

// deleteVirtualDisk removes a disk: its descriptor and the extents the descriptor
// names, or the one file of a single-file sparse disk (the simulator removes
// <n>.vmdk and <n>-flat.vmdk, and fails on a disk without a -flat file).
func deleteVirtualDisk(req *types.DeleteVirtualDisk_Task) types.BaseMethodFault {
	f, fault := resolveDisk(req.Datacenter, req.Name)
	if fault != nil {
		return fault
	}
	// A sparse disk is its one file: read its magic, not the whole disk (parsing
	// gigabytes of grains as a descriptor took seconds per GiB).
	if sparse, err := hasSparseMagic(f.descriptor); err != nil {
		return fileNotFound(f.dsPath)
	} else if sparse {
		if err := os.Remove(f.descriptor); err != nil && !os.IsNotExist(err) {
			return &types.CannotDeleteFile{FileFault: types.FileFault{File: f.dsPath}}
		}
		return nil
	}
	data, err := ioutil.ReadFile(f.descriptor)
	if err != nil {
		return fileNotFound(f.dsPath)
	}
	var files []string
	if d, err := parseDescriptor(string(data)); err == nil {
		for _, e := range d.extents() {
			files = append(files, path.Join(path.Dir(f.descriptor), e.file))
		}
	} else if len(data) == 0 {
		files = append(files, f.flat()) // a disk the simulator made: two empty files
	}
	for _, p := range append(files, f.descriptor) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return &types.CannotDeleteFile{FileFault: types.FileFault{File: f.dsPath}}
		}
	}
	return nil
}

// hasSparseMagic says whether a file starts with the sparse extent magic "KDMV".
func hasSparseMagic(name string) (bool, error) {
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	magic := make([]byte, 4)
	n, _ := io.ReadFull(f, magic)
	return n == 4 && string(magic) == "KDMV", nil
}
