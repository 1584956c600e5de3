package main

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"io/ioutil"
	"os"
	"strings"
)

// Reading single-file sparse VMDKs (monolithicSparse and streamOptimized, magic
// KDMV) into a flat extent, as ESXi does when it copies or imports one: the result
// is the disk's content, byte for byte, with unallocated grains as zeros.

const (
	sparseMagic      = 0x564d444b // "KDMV"
	flagCompressed   = 1 << 16
	flagMarkers      = 1 << 17
	gdAtEnd          = ^uint64(0)
	markerEOS        = 0
	maxGrainBytes    = 1 << 24 // a grain is 64 KiB in practice; refuse absurd headers
	maxOverheadBytes = 1 << 26
)

type sparseHeader struct {
	Magic            uint32
	Version          uint32
	Flags            uint32
	Capacity         uint64 // sectors
	GrainSize        uint64 // sectors
	DescriptorOffset uint64
	DescriptorSize   uint64
	NumGTEsPerGT     uint32
	RgdOffset        uint64
	GdOffset         uint64
	OverHead         uint64
}

var errCorrupt = errors.New("not a valid sparse VMDK")

func parseSparseHeader(sector []byte) (sparseHeader, error) {
	var h sparseHeader
	if len(sector) < 512 {
		return h, errCorrupt
	}
	if err := binary.Read(bytes.NewReader(sector[:72]), binary.LittleEndian, &h); err != nil || h.Magic != sparseMagic {
		return h, errCorrupt
	}
	if h.GrainSize == 0 || h.GrainSize*512 > maxGrainBytes || h.Capacity == 0 || h.Capacity > 1<<41 {
		return h, errCorrupt
	}
	return h, nil
}

func (h sparseHeader) compressed() bool { return h.Flags&flagCompressed != 0 }
func (h sparseHeader) grainBytes() int64 { return int64(h.GrainSize) * 512 }
func (h sparseHeader) sizeBytes() int64  { return int64(h.Capacity) * 512 }

// embeddedDescriptor reads the text descriptor a sparse file carries, from the
// bytes that follow the header sector (meta starts at sector 1).
func (h sparseHeader) embeddedDescriptor(meta []byte) *descriptor {
	if h.DescriptorOffset == 0 || h.DescriptorSize == 0 {
		return nil
	}
	start := int64(h.DescriptorOffset-1) * 512
	end := start + int64(h.DescriptorSize)*512
	if start < 0 || end > int64(len(meta)) {
		return nil
	}
	d, err := parseDescriptor(string(bytes.TrimRight(meta[start:end], "\x00")))
	if err != nil {
		return nil
	}
	return d
}

// writeGrain writes one grain's data at its place in the flat extent, clipped to
// the disk's size.
func writeGrain(out io.WriterAt, h sparseHeader, lba uint64, data []byte) error {
	off := int64(lba) * 512
	if off >= h.sizeBytes() {
		return errCorrupt
	}
	if off+int64(len(data)) > h.sizeBytes() {
		data = data[:h.sizeBytes()-off]
	}
	_, err := out.WriteAt(data, off)
	return err
}

// decodeStream reads a streamOptimized disk from r, positioned just after the
// header sector, writing grains into out: the metadata before overHead is read (for
// the descriptor), then markers follow one another until the end-of-stream marker.
func decodeStream(r io.Reader, h sparseHeader, out io.WriterAt) (*descriptor, error) {
	if h.OverHead < 1 || int64(h.OverHead)*512 > maxOverheadBytes {
		return nil, errCorrupt
	}
	meta := make([]byte, (h.OverHead-1)*512)
	if _, err := io.ReadFull(r, meta); err != nil {
		return nil, errCorrupt
	}
	d := h.embeddedDescriptor(meta)
	br := bufio.NewReaderSize(r, 1<<20)
	grain := make([]byte, h.grainBytes())
	var head [16]byte
	var zr io.ReadCloser
	var err error
	// pos is the stream offset of the next marker; complete says whether a stream
	// that ends there has delivered every grain its header's tables list.
	pos := int64(h.OverHead) * 512
	last, listed := lastGrainSector(meta, h)
	complete := func(pos int64) bool { return listed && pos > int64(last)*512 }
	for {
		if n, err := io.ReadFull(br, head[:12]); err != nil {
			if err == io.EOF && n == 0 && complete(pos) {
				// The stream ends after its last grain with no end-of-stream marker, as
				// qemu-img writes it (ESXi imports those).
				return d, nil
			}
			return nil, errCorrupt // cut short
		}
		val := binary.LittleEndian.Uint64(head[0:8])
		size := binary.LittleEndian.Uint32(head[8:12])
		if size == 0 {
			if _, err := io.ReadFull(br, head[12:16]); err != nil {
				return nil, errCorrupt
			}
			kind := binary.LittleEndian.Uint32(head[12:16])
			if kind == markerEOS {
				return d, nil
			}
			// A metadata marker (grain table, directory, footer): its sector, then val sectors.
			if _, err := io.CopyN(ioutil.Discard, br, 512-16+int64(val)*512); err != nil {
				return nil, errCorrupt
			}
			pos += 512 + int64(val)*512
			continue
		}
		if int64(size) > h.grainBytes()*2+1024 {
			return nil, errCorrupt
		}
		lr := &io.LimitedReader{R: br, N: int64(size)}
		if zr == nil {
			zr, err = zlib.NewReader(lr)
		} else {
			err = zr.(zlib.Resetter).Reset(lr, nil) // one inflater for every grain
		}
		if err != nil {
			return nil, errCorrupt
		}
		n, err := io.ReadFull(zr, grain)
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, errCorrupt
		}
		if err := writeGrain(out, h, val, grain[:n]); err != nil {
			return nil, err
		}
		// What zlib left unread of this grain, then the padding to the next sector.
		pad := (512 - (12+int64(size))%512) % 512
		if _, err := io.CopyN(ioutil.Discard, br, lr.N+pad); err != nil {
			return nil, errCorrupt
		}
		pos += 12 + int64(size) + pad
	}
}

// lastGrainSector is the highest grain offset in the grain tables a stream carries
// before its grains (qemu-img writes them there; VMware's streams put them at the
// end): false when the tables are not in meta (which starts at sector 1).
func lastGrainSector(meta []byte, h sparseHeader) (uint32, bool) {
	at := func(sector uint64, i uint64) (uint32, bool) {
		off := (sector-1)*512 + 4*i
		if sector < 1 || off+4 > uint64(len(meta)) {
			return 0, false
		}
		return binary.LittleEndian.Uint32(meta[off:]), true
	}
	if h.GdOffset == gdAtEnd || h.GdOffset == 0 || h.NumGTEsPerGT == 0 {
		return 0, false
	}
	perGT := uint64(h.NumGTEsPerGT) * h.GrainSize
	var last uint32
	for g := uint64(0); g < (h.Capacity+perGT-1)/perGT; g++ {
		gt, ok := at(h.GdOffset, g)
		if !ok {
			return 0, false
		}
		if gt == 0 {
			continue
		}
		for i := uint64(0); i < uint64(h.NumGTEsPerGT); i++ {
			sector, ok := at(uint64(gt), i)
			if !ok {
				return 0, false
			}
			if sector > last {
				last = sector
			}
		}
	}
	return last, true
}

// decodeSparseFile reads a monolithicSparse or streamOptimized file into out.
func decodeSparseFile(f *os.File, out io.WriterAt) (sparseHeader, *descriptor, error) {
	head := make([]byte, 512)
	if _, err := io.ReadFull(f, head); err != nil {
		return sparseHeader{}, nil, errCorrupt
	}
	h, err := parseSparseHeader(head)
	if err != nil {
		return h, nil, err
	}
	if h.compressed() {
		d, err := decodeStream(f, h, out)
		return h, d, err
	}
	fi, err := f.Stat()
	if err != nil {
		return h, nil, err
	}
	if h.GdOffset == gdAtEnd {
		// The real header is the footer, in the second-to-last sector.
		foot := make([]byte, 512)
		if _, err := f.ReadAt(foot, fi.Size()-1024); err != nil {
			return h, nil, errCorrupt
		}
		if h, err = parseSparseHeader(foot); err != nil {
			return h, nil, err
		}
	}
	var d *descriptor
	if h.DescriptorOffset > 0 && h.DescriptorSize > 0 && h.DescriptorSize < 1<<12 {
		meta := make([]byte, (h.DescriptorOffset-1+h.DescriptorSize)*512)
		if _, err := f.ReadAt(meta, 512); err == nil {
			d = h.embeddedDescriptor(meta)
		}
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 1<<16 {
		return h, nil, errCorrupt
	}
	perGT := uint64(h.NumGTEsPerGT) * h.GrainSize
	numGTs := (h.Capacity + perGT - 1) / perGT
	gd := make([]uint32, numGTs)
	if err := readLE(f, int64(h.GdOffset)*512, gd); err != nil {
		return h, nil, errCorrupt
	}
	gt := make([]uint32, h.NumGTEsPerGT)
	grain := make([]byte, h.grainBytes())
	for i, gtSector := range gd {
		if gtSector == 0 {
			continue
		}
		if err := readLE(f, int64(gtSector)*512, gt); err != nil {
			return h, nil, errCorrupt
		}
		for j, sector := range gt {
			if sector <= 1 { // 0: never written, 1: written as zeros
				continue
			}
			lba := (uint64(i)*uint64(h.NumGTEsPerGT) + uint64(j)) * h.GrainSize
			if lba >= h.Capacity {
				break
			}
			n, err := f.ReadAt(grain, int64(sector)*512)
			if err != nil && !(err == io.EOF && n > 0) {
				return h, nil, errCorrupt
			}
			if err := writeGrain(out, h, lba, grain[:n]); err != nil {
				return h, nil, err
			}
		}
	}
	return h, d, nil
}

func readLE(f *os.File, off int64, into []uint32) error {
	buf := make([]byte, 4*len(into))
	if _, err := f.ReadAt(buf, off); err != nil {
		return err
	}
	for i := range into {
		into[i] = binary.LittleEndian.Uint32(buf[4*i:])
	}
	return nil
}

// flatDescriptorFor is the descriptor of the flat copy of a sparse disk: a VMFS
// extent of the same capacity, with the source's disk database (hardware version,
// uuid, tools; the adapter and provisioning are the caller's to set).
func flatDescriptorFor(src *descriptor, flatFile string, sectors int64) *descriptor {
	adapter, hw := "lsilogic", "4"
	if src != nil {
		if a := src.get("ddb.adapterType"); a != "" {
			adapter = a
		}
		if v := src.get("ddb.virtualHWVersion"); v != "" {
			hw = v
		}
	}
	d := newFlatDescriptor(flatFile, sectors, adapter, true, hw)
	if src != nil {
		for _, l := range src.lines {
			m := keyRe.FindStringSubmatch(l)
			if m == nil || !strings.HasPrefix(m[1], "ddb.") || strings.HasPrefix(m[1], "ddb.geometry.") ||
				m[1] == "ddb.adapterType" || m[1] == "ddb.virtualHWVersion" || m[1] == "ddb.thinProvisioned" {
				continue
			}
			d.set(m[1], m[2])
		}
	}
	return d
}
