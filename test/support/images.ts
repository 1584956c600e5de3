// Real disk images for tests, made with qemu-img (qemu-utils) and GNU tar into a temp
// folder. ISO 9660 is written by hand: neither genisoimage nor xorriso is installed here,
// and a primary volume descriptor plus a terminator is all detection reads.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type QemuAdapter = "ide" | "buslogic" | "lsilogic" | "legacyESX";

export async function qemuImg(...args: string[]): Promise<string> {
  return (await run("qemu-img", args)).stdout;
}

/** A temp folder of images, removed by cleanup(). */
export class ImageDir {
  private constructor(readonly dir: string) {}

  static async create(): Promise<ImageDir> {
    return new ImageDir(await mkdtemp(join(tmpdir(), "images-")));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A raw file of `bytes` bytes: `dataBytes` of random data first, zeros after. */
  async raw(name: string, bytes: number, dataBytes = Math.min(bytes, 1 << 20)): Promise<string> {
    const b = Buffer.alloc(bytes);
    randomBytes(dataBytes).copy(b);
    await writeFile(this.path(name), b);
    return this.path(name);
  }

  /** `qemu-img create -f vmdk -o subformat=monolithicSparse,adapter_type=…` (empty grains). */
  async sparseVmdk(name: string, opts: { adapter?: QemuAdapter; sizeMiB?: number } = {}): Promise<string> {
    await qemuImg("create", "-q", "-f", "vmdk", "-o", `subformat=monolithicSparse,adapter_type=${opts.adapter ?? "ide"}`, this.path(name), `${opts.sizeMiB ?? 64}M`);
    return this.path(name);
  }

  /** A VMDK converted from a raw file holding `dataMiB` of random data, so grains are not empty. */
  async convertedVmdk(name: string, subformat: "streamOptimized" | "monolithicSparse", opts: { adapter?: QemuAdapter; sizeMiB?: number; dataMiB?: number } = {}): Promise<string> {
    const src = await this.raw(`${name}.src.raw`, (opts.sizeMiB ?? 8) << 20, (opts.dataMiB ?? 3) << 20);
    await qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${subformat},adapter_type=${opts.adapter ?? "ide"}`, src, this.path(name));
    await rm(src);
    return this.path(name);
  }

  /** monolithicFlat (or twoGbMaxExtentFlat): a descriptor `name` and its `-flat` / `-f001` extent beside it. */
  async flatVmdk(name: string, opts: { adapter?: QemuAdapter; sizeMiB?: number; subformat?: "monolithicFlat" | "twoGbMaxExtentFlat" } = {}): Promise<string> {
    await qemuImg("create", "-q", "-f", "vmdk", "-o", `subformat=${opts.subformat ?? "monolithicFlat"},adapter_type=${opts.adapter ?? "lsilogic"}`, this.path(name), `${opts.sizeMiB ?? 16}M`);
    return this.path(name);
  }

  /** Any other qemu format: qcow2, vpc (VHD), vhdx, vdi. */
  async qemu(name: string, format: "qcow2" | "vpc" | "vhdx" | "vdi", sizeMiB = 16): Promise<string> {
    await qemuImg("create", "-q", "-f", format, this.path(name), `${sizeMiB}M`);
    return this.path(name);
  }

  /** A minimal ISO 9660 image: 16 empty system sectors, a primary volume descriptor, a terminator. */
  async iso(name: string, volumeId = "TESTISO"): Promise<string> {
    const sectors = 18;
    const b = Buffer.alloc(sectors * 2048);
    const pvd = b.subarray(16 * 2048, 17 * 2048);
    pvd[0] = 1;
    pvd.write("CD001", 1, "latin1");
    pvd[6] = 1;
    pvd.write(volumeId.padEnd(32, " "), 40, "latin1");
    pvd.writeUInt32LE(sectors, 80);
    pvd.writeUInt32BE(sectors, 84);
    pvd.writeUInt16LE(2048, 128);
    pvd.writeUInt16BE(2048, 130);
    const end = b.subarray(17 * 2048);
    end[0] = 255;
    end.write("CD001", 1, "latin1");
    end[6] = 1;
    await writeFile(this.path(name), b);
    return this.path(name);
  }

  /** Packs files of this folder into a tar, in the order given (an OVA: the .ovf first). */
  async tar(name: string, members: string[], format: "ustar" | "gnu" | "pax" = "ustar"): Promise<string> {
    await run("tar", [`--format=${format}`, "-cf", this.path(name), "-C", this.dir, ...members]);
    return this.path(name);
  }
}

export interface OvfSpec {
  diskFile: string;
  diskFileSize?: number;
  capacityBytes: number;
  /** ResourceType 5 (IDE) or 6 (SCSI) with a subtype: lsilogic, buslogic, lsilogicsas, VirtualSCSI. */
  controller: { resourceType: 5 | 6 | 20; subType?: string };
  osType?: string;
  format?: string;
}

/** An OVF 1.0 descriptor as ovftool writes one (prefixed ovf: attributes, rasd: items). */
export function ovfText(s: OvfSpec): string {
  const sub = s.controller.subType ? `\n        <rasd:ResourceSubType>${s.controller.subType}</rasd:ResourceSubType>` : "";
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-test" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="${s.diskFile}" ovf:id="file1"${s.diskFileSize !== undefined ? ` ovf:size="${s.diskFileSize}"` : ""}/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="${s.capacityBytes / 2 ** 20}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="${s.format ?? "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"}"/>
  </DiskSection>
  <VirtualSystem ovf:id="test-vm">
    <Info>A virtual machine</Info>
    <Name>test-vm</Name>
    <OperatingSystemSection ovf:id="94"${s.osType ? ` vmw:osType="${s.osType}"` : ""}>
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>1 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>${sub}
        <rasd:ResourceType>${s.controller.resourceType}</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>8</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

/**
 * What vmdkinfo (libvmdk-utils) reads from a VMDK: an independent parser to cross-check
 * ours. It prints no adapter type; that is checked against the qemu-img option instead.
 */
export async function vmdkinfo(path: string): Promise<{ diskType: string; mediaSize: number; cid: string; parentCid: string; extentFiles: string[] }> {
  const out = (await run("vmdkinfo", [path])).stdout;
  const field = (label: string) => new RegExp(`${label}:\\s*(.+)`).exec(out)?.[1]?.trim();
  const media = /Media size:.*\((\d+) bytes\)/.exec(out)?.[1];
  if (!media) throw new Error(`vmdkinfo ${path}: no media size in\n${out}`);
  return {
    diskType: field("Disk type") ?? "",
    mediaSize: Number(media),
    cid: (field("Content identifier") ?? "").replace(/^0x/, ""),
    parentCid: (field("Parent content identifier") ?? "").replace(/^0x/, ""),
    extentFiles: [...out.matchAll(/Filename:\s*(.+)/g)].map((m) => m[1]!.trim()),
  };
}
