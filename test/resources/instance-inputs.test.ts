// Instance inputs and sizes, without vCenter: the zod schema's messages and the root
// disk's plan (a root disk smaller than the image is refused before anything is made).
import { describe, expect, it } from "vitest";
import { InputsSchema, NetworkSchema, guestIdFailure, sharesOf } from "../../provider/resources/instance-inputs.js";
import { diskPlan } from "../../provider/resources/instance-placement.js";

const GiB = 2 ** 30;
const image = (o: Record<string, unknown> = {}) => ({ imageId: "0123456789abcdef0123456789abcdef", kind: "disk" as const, osType: "otherGuest", cachePrefix: "", datastores: ["ds1"], capacityBytes: 3 * GiB, ...o });

describe("Instance inputs", () => {
  it("defaults: powered on, a VNC console, vmxnet3 NICs", () => {
    const r = InputsSchema.parse({ imageId: "0123456789abcdef0123456789abcdef", cpus: 2, memoryMb: 512, networks: [{ portGroup: "VM Network" }] });
    expect(r).toMatchObject({ powerState: "on", vnc: true, networks: [{ portGroup: "VM Network", model: "vmxnet3" }] });
  });

  it("refuses what vSphere refuses, saying what is accepted", () => {
    const bad = (v: Record<string, unknown>) => InputsSchema.safeParse({ imageId: "0123456789abcdef0123456789abcdef", cpus: 1, memoryMb: 64, ...v }).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    expect(bad({ cpus: 0 })).toEqual(["cpus: a whole number of CPUs, 1 or more"]);
    expect(bad({ memoryMb: 2 })).toEqual(["memoryMb: a whole number of MB, at least 4"]);
    expect(bad({ rootDiskGb: 0.5 })?.[0]).toMatch(/^rootDiskGb: /);
    expect(bad({ powerState: "paused" })?.[0]).toMatch(/^powerState: /);
    expect(bad({ cpuShares: 0 })?.[0]).toMatch(/^cpuShares: /);
    expect(bad({ metadata: { "a b": "x" } })?.[0]).toMatch(/^metadata\.a b: a key of letters/);
    expect(bad({ networks: Array.from({ length: 11 }, () => ({ portGroup: "n" })) })).toEqual(["networks: at most 10 NICs (vSphere's limit per VM)"]);
    expect(bad({ cpuz: 1 })?.[0]).toMatch(/cpuz/);
  });

  it("a NIC is on one port group: by name, or a distributed one by switch uuid and key", () => {
    expect(NetworkSchema.safeParse({ switchUuid: "50 1a" }).error?.issues[0]?.message).toBe("switchUuid and portgroupKey together (a distributed port group)");
    expect(NetworkSchema.safeParse({ portGroup: "a", switchUuid: "50 1a", portgroupKey: "dvportgroup-1" }).error?.issues[0]?.message).toBe("either portGroup or switchUuid + portgroupKey, not both");
    expect(NetworkSchema.safeParse({ portGroup: "a", macAddress: "00:50:56:zz:00:01" }).error?.issues[0]?.message).toMatch(/a MAC address/);
    expect(NetworkSchema.parse({ portGroup: "a", macAddress: "00:50:56:AA:00:01" }).macAddress).toBe("00:50:56:aa:00:01");
  });

  it("a guest id typo gets the closest ids with their names", () => {
    expect(guestIdFailure("ubuntu64Guest")).toBeUndefined();
    expect(guestIdFailure("ubuntu64guest")?.reason).toMatch(/did you mean "ubuntu64Guest"/);
  });

  it("shares: a level, or a count as custom", () => {
    expect(sharesOf("high")).toEqual({ level: "high" });
    expect(sharesOf(1500)).toEqual({ level: "custom", count: 1500 });
    expect(sharesOf(undefined)).toBeUndefined();
  });
});

describe("diskPlan", () => {
  it("refuses a root disk smaller than the image", () => {
    expect(() => diskPlan(image(), 2, true)).toThrow(/rootDiskGb 2 is smaller than image 0123456789abcdef0123456789abcdef \(3\.00 GiB\): a disk cannot shrink/);
  });

  it("a linked clone needs the image's room (its copy in that datastore's cache); a full copy its whole disk", () => {
    expect(diskPlan(image(), undefined, true)).toEqual({ rootGb: undefined, requiredBytes: 3 * GiB, linkedClone: true });
    expect(diskPlan(image(), 3, true)).toEqual({ rootGb: undefined, requiredBytes: 3 * GiB, linkedClone: true });
    expect(diskPlan(image(), 10, true)).toEqual({ rootGb: 10, requiredBytes: 3 * GiB, linkedClone: true });
    expect(diskPlan(image(), 10, false)).toEqual({ rootGb: 10, requiredBytes: 10 * GiB, linkedClone: false });
  });

  it("an ISO boots beside a blank root disk, which needs a size; never a linked clone", () => {
    expect(() => diskPlan(image({ kind: "iso" }), undefined, true)).toThrow(/is an ISO: give rootDiskGb/);
    expect(diskPlan(image({ kind: "iso", capacityBytes: 700 * 2 ** 20 }), 8, true)).toEqual({ rootGb: 8, requiredBytes: 8 * GiB, linkedClone: false });
  });
});
