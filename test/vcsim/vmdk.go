package main

import (
	"fmt"
	"math/rand"
	"regexp"
	"strconv"
	"strings"
)

// A VMDK text descriptor, kept line by line so that what the harness does not
// change is written back as it was.
type descriptor struct {
	lines []string
}

type extent struct {
	line    int
	access  string // RW, RDONLY, NOACCESS
	sectors int64
	kind    string // FLAT, VMFS, SPARSE, ...
	file    string
	offset  string // optional, as written
}

var (
	extentRe = regexp.MustCompile(`^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)\s+"([^"]*)"(\s+\d+)?\s*$`)
	keyRe    = regexp.MustCompile(`^\s*([A-Za-z0-9_.]+)\s*=\s*"?([^"]*)"?\s*$`)
)

// parseDescriptor reads a text descriptor; an error if text is not one (a sparse
// file, though it embeds one, an empty file, or no extent line).
func parseDescriptor(text string) (*descriptor, error) {
	if strings.HasPrefix(text, "KDMV") || !strings.Contains(text, "# Disk DescriptorFile") && !strings.Contains(text, "createType") {
		return nil, fmt.Errorf("not a disk descriptor")
	}
	d := &descriptor{lines: strings.Split(strings.TrimRight(text, "\x00\n"), "\n")}
	if len(d.extents()) == 0 {
		return nil, fmt.Errorf("a disk descriptor without an extent")
	}
	return d, nil
}

func (d *descriptor) String() string { return strings.Join(d.lines, "\n") + "\n" }

func (d *descriptor) extents() []extent {
	var out []extent
	for i, l := range d.lines {
		m := extentRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, extent{line: i, access: m[1], sectors: n, kind: m[3], file: m[4], offset: m[5]})
	}
	return out
}

func (d *descriptor) setExtent(e extent) {
	d.lines[e.line] = fmt.Sprintf(`%s %d %s "%s"%s`, e.access, e.sectors, e.kind, e.file, e.offset)
}

func (d *descriptor) get(key string) string {
	for _, l := range d.lines {
		if m := keyRe.FindStringSubmatch(l); m != nil && m[1] == key {
			return m[2]
		}
	}
	return ""
}

// set replaces key's value, or adds the key (a ddb key at the end).
func (d *descriptor) set(key, value string) {
	line := fmt.Sprintf(`%s = "%s"`, key, value)
	if !strings.HasPrefix(key, "ddb.") {
		line = fmt.Sprintf(`%s="%s"`, key, value)
	}
	for i, l := range d.lines {
		if m := keyRe.FindStringSubmatch(l); m != nil && m[1] == key {
			d.lines[i] = line
			return
		}
	}
	d.lines = append(d.lines, line)
}

// remove drops key's line.
func (d *descriptor) remove(key string) {
	out := d.lines[:0]
	for _, l := range d.lines {
		if m := keyRe.FindStringSubmatch(l); m != nil && m[1] == key {
			continue
		}
		out = append(out, l)
	}
	d.lines = out
}

// setProvisioning writes a disk's adapter and thin flag into its database.
func (d *descriptor) setProvisioning(adapter string, thin bool) {
	d.set("ddb.adapterType", adapter)
	if thin {
		d.set("ddb.thinProvisioned", "1")
	} else {
		d.remove("ddb.thinProvisioned")
	}
	d.setGeometry(d.extents()[0].sectors)
}

// geometry is the BIOS geometry ESXi writes for a disk of that many sectors.
func geometry(sectors int64, adapter string) (cylinders, heads, perTrack int64) {
	heads, perTrack = 255, 63
	if adapter == "ide" {
		heads = 16
	}
	cylinders = sectors / (heads * perTrack)
	if adapter == "ide" && cylinders > 16383 {
		cylinders = 16383
	}
	return cylinders, heads, perTrack
}

func (d *descriptor) setGeometry(sectors int64) {
	c, h, s := geometry(sectors, d.get("ddb.adapterType"))
	d.set("ddb.geometry.cylinders", strconv.FormatInt(c, 10))
	d.set("ddb.geometry.heads", strconv.FormatInt(h, 10))
	d.set("ddb.geometry.sectors", strconv.FormatInt(s, 10))
}

// descriptorAdapter is how a descriptor names a VirtualDiskAdapterType.
func descriptorAdapter(apiType string) string {
	switch strings.ToLower(apiType) {
	case "ide":
		return "ide"
	case "buslogic":
		return "buslogic"
	default:
		return "lsilogic"
	}
}

// newFlatDescriptor is the descriptor ESXi writes for a flat disk on VMFS: one
// VMFS extent, the -flat file beside it.
func newFlatDescriptor(flatFile string, sectors int64, adapter string, thin bool, hwVersion string) *descriptor {
	text := fmt.Sprintf(`# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=%08x
parentCID=ffffffff
createType="vmfs"

# Extent description
RW %d VMFS "%s"

# The Disk Data Base
#DDB

ddb.adapterType = "%s"
ddb.virtualHWVersion = "%s"
`, rand.Uint32()|1, sectors, flatFile, adapter, hwVersion)
	d, _ := parseDescriptor(text)
	d.setGeometry(sectors)
	if thin {
		d.set("ddb.thinProvisioned", "1")
	}
	return d
}
