// `npm run demo` (after its bootstrap and build): the quickstart on the embedded simulator.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./vcsim/build.mjs";

/** One instance as the demo prints it after reading its VM from vCenter. */
interface VmLines {
  name: string;
  vmId: string;
  power: string;
  host: string;
  vncPort: number;
  disk: string;
  parent: string;
  nics: string;
}

function vmLines(out: string, key: string): VmLines {
  const m = new RegExp(
    `\\n    ${key}: VM ([0-9a-f-]{36}) \\((vm-\\d+)\\), (\\w+) on host (\\S+), VNC port (\\d+)\\n      disk   (.+)\\n      parent (.+)\\n      nics   (.+)\\n`,
  ).exec(out);
  expect(m, `the demo's lines for VM ${key}`).not.toBeNull();
  const [, name, vmId, power, host, port, disk, parent, nics] = m!;
  return { name: name!, vmId: vmId!, power: power!, host: host!, vncPort: Number(port), disk: disk!, parent: parent!, nics: nics! };
}

describe("npm run demo", () => {
  it("runs the quickstart: preview, up, no-op up, destroy, showing the port group on every host, the image in the datastore cache and each instance's VM", async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(join(PROJECT_ROOT, "node_modules", ".bin", "tsx"), ["scripts/demo.ts"], { cwd: PROJECT_ROOT, timeout: 180_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    const lines = out.split("\n");
    expect(lines[0]).toMatch(/^demo: (the Pulumi CLI is not installed, so the quickstart runs through the engine-protocol harness|the quickstart with the Pulumi CLI)/);
    const harness = lines[0]!.includes("harness");
    if (harness) {
      // A PortGroup, an Image, three Instances and an ImageCachePolicy (its interval not passed: no sweep on the second up).
      expect(out).toMatch(/\$ up\n  6 create\n/);
      expect(out).toMatch(/\$ up \(again: expect no changes\)\n  6 same\n/);
      for (const h of ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]) expect(out).toContain(`${h}: port group quickstart-net, VLAN 100, on vSwitch0`);
      expect(out).toMatch(/\$ destroy\n  6 delete\n/);
      expect(out).toContain("DC0_C0_H2: (none)");
      expect(out).toMatch(/imageFormat: "VMDK streamOptimized"/);
    }
    // The image: cached under _base/<imageId> (no vmware:cachePrefix) as the flat disk the
    // NFC import made of the streamOptimized VMDK (32 MiB), with this stack's holder marker;
    // no staging left behind; the folder gone after destroy.
    const folder = /\n    (\[(LocalDS_\d)\] _base\/([0-9a-f]{32})):\n/.exec(out);
    expect(folder, "the cache folder listing").not.toBeNull();
    const [, path, ds, id] = folder!;
    expect(out).toMatch(new RegExp(`\\n      ${id}-flat\\.vmdk +33554432 bytes\\n`));
    expect(out).toMatch(new RegExp(`\\n      ${id}\\.vmdk +\\d+ bytes\\n`));
    expect(out).toMatch(/\n      holder-[0-9a-f-]{36}\.json +\d+ bytes\n/);
    // db's 20 GiB root disk: a sized base beside the image, made by copy + extend.
    expect(out).toMatch(new RegExp(`\\n      ${id}\\.20-flat\\.vmdk +21474836480 bytes\\n`));
    expect(out).toMatch(/\n    \[LocalDS_\d\] vmware_temp: \(empty\)\n/);
    expect(out).toContain(`    ${path}: (gone)`);

    // Each instance's VM as read from vCenter: a linked clone (a delta in its own folder on
    // the image's datastore) whose parent is the cached base (db: the sized base), on a
    // host of the cluster, with a VNC port of the range no other of them has.
    const base = `[${ds}] _base/${id}/${id}`;
    const vms = { web: vmLines(out, "web"), db: vmLines(out, "db"), batch: vmLines(out, "batch") };
    for (const vm of Object.values(vms)) {
      expect(vm.host).toMatch(/^DC0_C0_H[012]$/);
      expect(vm.vncPort).toBeGreaterThanOrEqual(5900);
      expect(vm.vncPort).toBeLessThanOrEqual(6105);
      expect(vm.disk).toMatch(new RegExp(`^\\[${ds}\\] ${vm.name}/${vm.name}\\.vmdk \\(\\d+ MiB, VirtualLsiLogicController\\)$`));
    }
    expect(new Set(Object.values(vms).map((v) => v.vncPort)).size).toBe(3);
    expect(new Set(Object.values(vms).map((v) => v.name)).size).toBe(3);
    expect([vms.web.parent, vms.db.parent, vms.batch.parent]).toEqual([`${base}.vmdk`, `${base}.20.vmdk`, `${base}.vmdk`]);
    expect(vms.db.disk).toContain("(20480 MiB,");
    expect([vms.web.power, vms.db.power, vms.batch.power]).toEqual(["poweredOn", "poweredOn", "poweredOff"]);
    expect([vms.web.nics, vms.db.nics, vms.batch.nics]).toEqual(["vmxnet3 on quickstart-net", "vmxnet3 on quickstart-net", "e1000e on quickstart-net"]);
    if (harness) {
      // The stack's outputs say what vCenter says.
      const exported = JSON.parse(/\n    instances: (.+)\n/.exec(out)![1]!) as Record<string, { name: string; vmId: string; host: string; diskParent: string; vncPort: number }>;
      for (const [key, vm] of Object.entries(vms)) {
        expect(exported[key]).toMatchObject({ name: vm.name, vmId: vm.vmId, host: vm.host, diskParent: vm.parent, vncPort: vm.vncPort });
      }
      // The cache policy swept after the instances: the one cached image is in use by the three VMs, nothing removed.
      const cache = JSON.parse(/\n    imageCache: (.+)\n/.exec(out)![1]!) as { summary: Record<string, number>; inUse: Record<string, string[]> };
      expect(cache.inUse).toEqual({ [`[${ds}] ${id}`]: Object.values(vms).map((v) => v.name).sort() });
      expect(cache.summary).toMatchObject({ images: 1, inUse: 1, removed: 0, bytesFreed: 0 });
    }
    // After destroy: each VM and its folder gone (never Destroy_Task: the base went with its Image).
    for (const [key, vm] of Object.entries(vms)) expect(out).toContain(`    ${key}: VM ${vm.vmId} (gone); its folder [${ds}] ${vm.name}: (gone)`);
    expect(lines.at(-2)).toBe("demo done: simulator stopped");
  });
});
