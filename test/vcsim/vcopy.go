package main

import (
	"io"
	"io/ioutil"
	"os"
	"path"

	"github.com/vmware/govmomi/vim25/types"
)

// CopyVirtualDisk_Task and MoveVirtualDisk_Task as the API reference describes them
// and ESXi runs them, for the disks the simulator gets wrong (it copies <n>.vmdk
// and <n>-flat.vmdk byte for byte, and refuses a destSpec on vCenter):
//   - a single-file sparse source (monolithicSparse or streamOptimized, magic KDMV)
//     becomes a flat disk at the destination: a descriptor and a -flat extent with
//     the disk's content (the simulator fails with FileNotFound on the missing -flat);
//   - a descriptor with one flat extent is copied with its extent renamed after the
//     destination, as ESXi writes it (the simulator's copy still names the source's);
//   - a copy is made as destSpec says, and without one "a preallocated format and
//     busLogic adapter type is assumed" (the reference's words); its force flag "is
//     currently ignored" (an existing destination is always FileAlreadyExists). A move
//     keeps the disk's adapter and provisioning and honours force;
//   - without destDatacenter, "the destination path belongs to the source datacenter".
// A missing source is FileNotFound naming it. A descriptor the simulator made
// empty is left to the simulator.

// copyOptions is what a copy or move makes of its destination.
type copyOptions struct {
	move  bool
	force bool
	spec  *types.VirtualDiskSpec // a copy's destSpec; nil: preallocated, busLogic
}

// adapterAndThin is how a copy provisions its destination (a move keeps the source's).
func (o copyOptions) adapterAndThin() (string, bool) {
	if o.spec == nil {
		return "buslogic", false
	}
	return descriptorAdapter(o.spec.AdapterType), o.spec.DiskType == "thin"
}

// ownsDiskCopy reports whether the harness copies this source itself.
func ownsDiskCopy(dc *types.ManagedObjectReference, name string) bool {
	src, fault := resolveDisk(dc, name)
	if fault != nil {
		return false
	}
	f, err := os.Open(src.descriptor)
	if err != nil {
		return true // FileNotFound naming the source (the simulator's names the destination)
	}
	defer f.Close()
	head := make([]byte, 4096)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if n >= 4 && string(head[:4]) == "KDMV" {
		return true
	}
	d, err := parseDescriptor(string(head))
	return err == nil && singleFlatExtent(d) != nil
}

func singleFlatExtent(d *descriptor) *extent {
	exts := d.extents()
	if len(exts) != 1 || (exts[0].kind != "VMFS" && exts[0].kind != "FLAT") {
		return nil
	}
	return &exts[0]
}

func copyVirtualDisk(srcDC *types.ManagedObjectReference, srcName string, dstDC *types.ManagedObjectReference, dstName string, o copyOptions) types.BaseMethodFault {
	if dstDC == nil {
		dstDC = srcDC
	}
	if o.spec != nil && !flatDiskTypes[o.spec.DiskType] {
		return &types.NotSupported{} // the harness makes flat copies only
	}
	src, fault := resolveDisk(srcDC, srcName)
	if fault != nil {
		return fault
	}
	dst, fault := resolveDisk(dstDC, dstName)
	if fault != nil {
		return fault
	}
	if !exists(src.descriptor) {
		return fileNotFound(src.dsPath)
	}
	if src.descriptor == dst.descriptor {
		return nil // the reference: same location, no effect
	}
	if !exists(path.Dir(dst.descriptor)) {
		return fileNotFound(dst.dsPath)
	}
	if o.move && o.force {
		os.Remove(dst.descriptor)
		os.Remove(dst.flat())
	}
	// The destination's name is claimed at once (create-exclusive), as the datastore's
	// file system does it on ESXi: of two copies or moves to one name running together,
	// one wins and the other is FileAlreadyExists. A test-then-write here let both
	// "succeed", the later silently replacing the earlier's disk.
	claim, err := os.OpenFile(dst.descriptor, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if os.IsExist(err) {
			return fileExists(dst.dsPath)
		}
		return &types.CannotCreateFile{FileFault: types.FileFault{File: dst.dsPath}}
	}
	claim.Close()
	if exists(dst.flat()) {
		os.Remove(dst.descriptor)
		return fileExists(dst.dsPath)
	}
	fault = copyClaimed(src, dst, o)
	if fault != nil {
		os.Remove(dst.descriptor)
	}
	return fault
}

// copyClaimed writes dst (whose descriptor name copyVirtualDisk has claimed) from src.
func copyClaimed(src, dst diskFile, o copyOptions) types.BaseMethodFault {
	var fault types.BaseMethodFault
	in, err := os.Open(src.descriptor)
	if err != nil {
		return fileNotFound(src.dsPath)
	}
	defer in.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(in, magic); err != nil {
		return &types.InvalidDiskFormat{}
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return &types.CannotAccessFile{FileFault: types.FileFault{File: src.dsPath}}
	}
	var d *descriptor
	if string(magic) == "KDMV" {
		d, fault = flattenSparse(in, dst)
	} else {
		d, fault = copyFlat(src, dst, o.move)
	}
	if fault != nil {
		return fault
	}
	if !o.move {
		d.setProvisioning(o.adapterAndThin())
	}
	if err := ioutil.WriteFile(dst.descriptor, []byte(d.String()), 0o600); err != nil {
		os.Remove(dst.flat())
		return &types.CannotCreateFile{FileFault: types.FileFault{File: dst.dsPath}}
	}
	if o.move {
		os.Remove(src.descriptor)
	}
	return nil
}

// flattenSparse writes the content of the sparse file in as dst's -flat extent
// and returns dst's descriptor (thin, the source's adapter).
func flattenSparse(in *os.File, dst diskFile) (*descriptor, types.BaseMethodFault) {
	out, err := os.OpenFile(dst.flat(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: dst.dsPath}}
	}
	h, srcDesc, err := decodeSparseFile(in, out)
	if err == nil {
		err = out.Truncate(h.sizeBytes())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst.flat())
		if err == errCorrupt {
			return nil, &types.InvalidDiskFormat{}
		}
		return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: dst.dsPath}}
	}
	return flatDescriptorFor(srcDesc, path.Base(dst.flat()), int64(h.Capacity)), nil
}

// copyFlat copies (or moves) a flat disk's extent and returns dst's descriptor:
// the source's, its extent renamed after dst.
func copyFlat(src, dst diskFile, move bool) (*descriptor, types.BaseMethodFault) {
	data, err := ioutil.ReadFile(src.descriptor)
	if err != nil {
		return nil, fileNotFound(src.dsPath)
	}
	d, err := parseDescriptor(string(data))
	if err != nil {
		return nil, &types.InvalidDiskFormat{}
	}
	ext := singleFlatExtent(d)
	if ext == nil {
		return nil, &types.InvalidDiskFormat{}
	}
	from := path.Join(path.Dir(src.descriptor), ext.file)
	if !exists(from) {
		return nil, fileNotFound(src.dsPath)
	}
	if move {
		err = os.Rename(from, dst.flat())
	} else {
		err = copyFile(from, dst.flat())
	}
	if err != nil {
		os.Remove(dst.flat())
		return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: dst.dsPath}}
	}
	ext.file = path.Base(dst.flat())
	d.setExtent(*ext)
	return d, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
