// OVA: a tar built here with GNU tar (the .ovf first, as ovftool writes it) around a
// streamOptimized VMDK from qemu-img; the disk streamed out of it unchanged, never unpacked.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DigestStream } from "../../provider/vsphere/checksum.js";
import { allocationUnits, openOva, parseOvf } from "../../provider/vsphere/ova.js";
import { sniffImageFile } from "../../provider/vsphere/image-stream.js";
import { ImageDir, ovfText, type OvfSpec } from "../support/images.js";

let images: ImageDir;
let disk: Buffer;
const DISK = "test-vm-disk1.vmdk";
beforeAll(async () => {
  images = await ImageDir.create();
  disk = await readFile(await images.convertedVmdk(DISK, "streamOptimized", { adapter: "lsilogic", sizeMiB: 16, dataMiB: 4 }));
});
afterAll(async () => {
  await images.cleanup();
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Writes the .ovf (and a .mf) and packs them with the disk, .ovf first. */
async function buildOva(name: string, spec: Partial<OvfSpec> = {}, opts: { diskName?: string; format?: "ustar" | "gnu" | "pax"; members?: string[] } = {}) {
  const diskName = opts.diskName ?? DISK;
  if (diskName !== DISK) await copyFile(images.path(DISK), images.path(diskName));
  const ovf = `${name}.ovf`;
  await writeFile(
    images.path(ovf),
    ovfText({ diskFile: diskName, diskFileSize: disk.length, capacityBytes: 16 << 20, controller: { resourceType: 6, subType: "VirtualSCSI" }, osType: "ubuntu64Guest", ...spec }),
  );
  await writeFile(images.path(`${name}.mf`), `SHA256(${ovf})= ${sha256(await readFile(images.path(ovf)))}\nSHA256(${diskName})= ${sha256(disk)}\n`);
  return images.tar(`${name}.ova`, opts.members ?? [ovf, `${name}.mf`, diskName], opts.format ?? "ustar");
}

async function drain(stream: NodeJS.ReadableStream, digest = new DigestStream(["md5"])) {
  await pipeline(stream, digest, new Writable({ write: (_c, _e, cb) => cb() }));
  return digest.result;
}

describe("OVA", () => {
  it("is detected, its .ovf read, and its disk streamed out byte for byte", async () => {
    const path = await buildOva("vm");
    expect((await sniffImageFile(path).then((s) => (s.stream.destroy(), s.info))).format).toBe("ova");
    const ova = await openOva(createReadStream(path), { source: path });
    expect(ova.ovfName).toBe("vm.ovf");
    expect(ova.ovf).toMatchObject({ name: "test-vm", osType: "ubuntu64Guest", osCimId: "94", hardwareFamily: "vmx-13" });
    expect(ova.ovf.disks).toEqual([
      {
        diskId: "vmdisk1",
        file: { id: "file1", href: DISK, size: disk.length, compression: undefined, chunkSize: undefined },
        capacityBytes: 16 << 20,
        format: "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
        diskType: "streamOptimized",
        controller: { resourceType: 6, subType: "VirtualSCSI", adapterType: "paraVirtual" },
      },
    ]);
    expect(ova.manifest?.[DISK]).toEqual({ algorithm: "sha256", digest: sha256(disk) });
    expect(ova.disk).toMatchObject({ name: DISK, size: disk.length, adapterType: "paraVirtual" });
    expect(ova.disk.info.format === "vmdk" && ova.disk.info.vmdk).toMatchObject({ createType: "streamOptimized", capacityBytes: 16 << 20, descriptorAdapterType: "lsilogic" });
    const d = await drain(ova.disk.stream);
    expect(d).toMatchObject({ bytes: disk.length, sha256: sha256(disk), md5: createHash("md5").update(disk).digest("hex") });
  });

  it("reads only the .ovf, the manifest and the disk's first 64 KiB before the caller streams; closes the source after", async () => {
    const data = await readFile(await buildOva("bounded"));
    const state = { pulled: 0, closed: false };
    async function* source() {
      try {
        for (let i = 0; i < data.length; i += 16384) {
          state.pulled += Math.min(16384, data.length - i);
          yield data.subarray(i, i + 16384);
        }
      } finally {
        state.closed = true;
      }
    }
    const ova = await openOva(source());
    const diskOffset = data.indexOf(disk.subarray(0, 512));
    expect(diskOffset).toBeGreaterThan(0);
    expect(state.pulled).toBeLessThanOrEqual(diskOffset + 64 * 1024 + 16384);
    expect(state.pulled).toBeLessThan(data.length / 4);
    expect((await drain(ova.disk.stream)).sha256).toBe(sha256(disk));
    expect(state.closed).toBe(true);
  });

  it.each([
    [{ resourceType: 5 }, "ide"],
    [{ resourceType: 6, subType: "lsilogic" }, "lsiLogic"],
    [{ resourceType: 6, subType: "buslogic" }, "busLogic"],
    [{ resourceType: 6, subType: "lsilogicsas" }, "lsiLogicsas"],
  ] as const)("controller %o gives adapterType %s", async (controller, adapterType) => {
    const ova = await openOva(createReadStream(await buildOva(`c${controller.resourceType}${"subType" in controller ? controller.subType : ""}`, { controller })));
    expect(ova.disk.adapterType).toBe(adapterType);
    ova.disk.stream.destroy();
  });

  it("a SATA controller is no Nova adapter: the VMDK's own ddb.adapterType is used", async () => {
    const ova = await openOva(createReadStream(await buildOva("sata", { controller: { resourceType: 20, subType: "vmware.sata.ahci" } })));
    expect(ova.disk.ovf.controller).toEqual({ resourceType: 20, subType: "vmware.sata.ahci", adapterType: undefined });
    expect(ova.disk.adapterType).toBe("lsiLogic");
    ova.disk.stream.destroy();
  });

  it.each(["gnu", "pax"] as const)("%s tar with a disk name past 100 characters", async (format) => {
    const long = `${"a-very-long-disk-name-".repeat(6)}${format}.vmdk`;
    expect(long.length).toBeGreaterThan(100);
    const ova = await openOva(createReadStream(await buildOva(`long-${format}`, {}, { diskName: long, format })));
    expect(ova.disk.name).toBe(long);
    expect((await drain(ova.disk.stream)).sha256).toBe(sha256(disk));
  });

  it('members packed as "./name" match the .ovf\'s plain names', async () => {
    const ova = await openOva(createReadStream(await buildOva("dot", {}, { members: ["./dot.ovf", "./dot.mf", `./${DISK}`] })));
    expect([ova.ovfName, ova.disk.name]).toEqual(["dot.ovf", DISK]);
    expect((await drain(ova.disk.stream)).sha256).toBe(sha256(disk));
  });

  it("an OVA without the disk its .ovf names says which member is missing", async () => {
    const path = await buildOva("nodisk", {}, { members: ["nodisk.ovf", "nodisk.mf"] });
    const err = await openOva(createReadStream(path)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "InvalidImage", reason: "truncated" });
    expect((err as Error).message).toContain(`"${DISK}" (the disk the .ovf names)`);
  });

  it("an OVA cut inside its disk fails the disk stream as truncated", async () => {
    const path = await buildOva("cut");
    await truncate(path, (await stat(path)).size - 1024 * 1024);
    const ova = await openOva(createReadStream(path), { source: path });
    await expect(drain(ova.disk.stream)).rejects.toMatchObject({ code: "InvalidImage", reason: "truncated" });
  });

  it("a disk that is not a VMDK, or a sparse VMDK where the .ovf says streamOptimized, is refused", async () => {
    await images.raw("notvmdk.vmdk", 1 << 20);
    await writeFile(images.path("nv.ovf"), ovfText({ diskFile: "notvmdk.vmdk", capacityBytes: 1 << 20, controller: { resourceType: 5 } }));
    const nv = await images.tar("nv.ova", ["nv.ovf", "notvmdk.vmdk"]);
    const err = await openOva(createReadStream(nv), { source: nv }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "InvalidImage", reason: "badMagic" });
    expect((err as Error).message).toContain(`${nv}!notvmdk.vmdk: not the image format expected: expected a VMDK`);
    await images.sparseVmdk("sparse-in-ova.vmdk", { sizeMiB: 8 });
    await writeFile(images.path("sp.ovf"), ovfText({ diskFile: "sparse-in-ova.vmdk", capacityBytes: 8 << 20, controller: { resourceType: 5 } }));
    const err2 = await openOva(createReadStream(await images.tar("sp.ova", ["sp.ovf", "sparse-in-ova.vmdk"]))).catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/expected a streamOptimized VMDK.*found a monolithicSparse VMDK/);
  });
});

describe("OVF details", () => {
  it("capacity units", () => {
    expect(allocationUnits("byte * 2^30")).toBe(2 ** 30);
    expect(allocationUnits("byte * 10^9")).toBe(1e9);
    expect(allocationUnits(undefined)).toBe(1);
    expect(allocationUnits("GB")).toBe(2 ** 30);
    expect(allocationUnits("furlongs")).toBeUndefined();
  });

  it("not XML, or no Envelope, is a corrupt descriptor", () => {
    expect(() => parseOvf("<Foo/>", "x.ovf")).toThrow(/OVF <Envelope>.*Foo/);
  });
});
