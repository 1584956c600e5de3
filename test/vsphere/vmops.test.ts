// Spawning VMs against the simulator: one CreateVM_Task with every device, a linked clone
// of a cached base, VNC ports unique under concurrency (in one process and across two),
// and a failure after the create leaving nothing but the cached base.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, makeDirectory } from "../../provider/vsphere/datastore.js";
import { findVm, getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { runTask } from "../../provider/vsphere/task.js";
import { removeVm, vmState } from "../../provider/vsphere/vm-lifecycle.js";
import { prepareRootDisk } from "../../provider/vsphere/root-disk.js";
import { spawnVm, type SpawnOptions } from "../../provider/vsphere/vmops.js";
import { VNC_PORTS, pickVncPort, portsTakenOn, vncPortsInUse } from "../../provider/vsphere/vnc.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { createDisk } from "../support/vms.js";

const DS = "LocalDS_0";
const base = new DatastorePath(DS, "ops_base/img/img.vmdk");
let sim: Vcsim;
let client: VimClient;
let other: VimClient;
let dc: Datacenter;
let cluster: Cluster;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 2, drs: false });
  [client, other] = await Promise.all([VimClient.connect(simOptions(sim)), VimClient.connect(simOptions(sim))]);
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  await makeDirectory(client, dc, base.parent, { createParents: true });
  await createDisk(client, dc, base.toString(), 4096);
});
afterAll(async () => {
  await client?.close();
  await other?.close();
  await sim?.stop();
});

function options(name: string): SpawnOptions {
  return {
    cluster,
    spec: {
      name,
      datastore: DS,
      guestId: "ubuntu64Guest",
      numCpus: 1,
      memoryMb: 128,
      adapterType: "lsiLogic",
      rootDisk: { kind: "linkedClone", base, capacityKb: 4096 },
      nics: [{ backing: { kind: "standard", networkName: "VM Network" } }],
    },
  };
}

describe("spawnVm", () => {
  it("makes a linked clone with its devices in one CreateVM_Task, on a host of the cluster, powered on, with a VNC port", async () => {
    await sim.control.resetStats();
    const made = await spawnVm(client, options("ops-one"));
    const methods = (await sim.control.stats()).methods;
    expect(methods.CreateVM_Task).toBe(1);
    expect(methods.ReconfigVM_Task).toBeUndefined();
    expect(Object.keys(made.devices).sort()).toEqual(["controller", "disk", "nic0"]);
    expect(made.view.disks.map((d) => d.key)).toEqual([made.devices.disk]);
    expect(made.view.vncPort).toBe(made.vncPort);
    expect(cluster.hosts.some((h) => h.equals(made.host!))).toBe(true);
    expect(made.vncPort).toBeGreaterThanOrEqual(VNC_PORTS.first);
    expect((await vmState(client, made.vm))?.powerState).toBe("poweredOn");
    expect((await vncPortsInUse(client)).find((u) => u.vm.equals(made.vm))?.port).toBe(made.vncPort);
  });

  it("gives 20 VMs made at once in one process 20 ports", async () => {
    const made = await Promise.all(Array.from({ length: 20 }, (_, i) => spawnVm(client, options(`ops-many-${i}`))));
    const ports = made.map((m) => m.vncPort);
    expect(new Set(ports).size).toBe(20);
    const inUse = portsTakenOn(await vncPortsInUse(client), cluster.hosts);
    expect(new Set(inUse).size).toBe(inUse.length);
  });

  it("moves its VNC port when another process's VM took the same one during the create", async () => {
    const name = "ops-race";
    const wanted = pickVncPort(portsTakenOn(await vncPortsInUse(client), cluster.hosts), name);
    const rival = await spawnVm(other, { ...options("ops-rival"), vnc: false, powerOn: false });
    await sim.control.addRule({ kind: "taskDelay", method: "CreateVM_Task", ms: 300 });
    const spawning = spawnVm(client, options(name));
    // While the create runs (the port was picked before it), the rival takes that port.
    await waitFor(async () => ((await sim.control.stats()).methods.CreateVM_Task ?? 0) > 0);
    await runTask(other, "ReconfigVM_Task", rival.vm, { spec: { extraConfig: [{ key: "RemoteDisplay.vnc.port", value: String(wanted) }] } });
    const made = await spawning;
    await sim.control.clearRules();
    expect(made.vncPort).not.toBe(wanted);
    const uses = await vncPortsInUse(client);
    expect(uses.find((u) => u.vm.equals(made.vm))?.port).toBe(made.vncPort);
    expect(uses.filter((u) => u.port === wanted).map((u) => u.vm.value)).toEqual([rival.vm.value]);
  });

  it("a full copy: the VM made in the folder its copied disk is in, and removed with it", async () => {
    const rd = await prepareRootDisk(client, { datacenter: dc, datastore: DS, cachedOn: DS, cachePrefix: "ops", imageId: "img", capacityBytes: 4 * 1024 * 1024, linkedClone: false, vmName: "ops-full" });
    const made = await spawnVm(client, { ...options("ops-full"), spec: { ...options("ops-full").spec, rootDisk: rd.disk } });
    const state = await vmState(client, made.vm);
    expect(state?.folder?.toString()).toBe(`[${DS}] ops-full`);
    expect(await fileExists(client, dc, new DatastorePath(DS, "ops-full_1"))).toBe(false);
    await removeVm(client, dc, made.vm);
    expect(await fileExists(client, dc, new DatastorePath(DS, "ops-full"))).toBe(false);
    expect(await fileExists(client, dc, base)).toBe(true);
  });

  it("removes the VM when a step after the create fails, leaving the cached base", async () => {
    await sim.control.addRule({ kind: "taskError", method: "PowerOnVM_Task", fault: "InsufficientResourcesFault", message: "no memory" });
    const err = await rejection(spawnVm(client, options("ops-fail")));
    await sim.control.clearRules();
    expect(err.message).toMatch(/no memory/);
    expect(await findVm(client, { name: "ops-fail" }, dc)).toBeUndefined();
    expect(await fileExists(client, dc, new DatastorePath(DS, "ops-fail"))).toBe(false);
    expect(await fileExists(client, dc, base)).toBe(true);
  });
});

/** Waits for a state the simulator reports (no fixed sleep: each look is a round trip). */
async function waitFor(cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) if (await cond()) return;
  throw new Error("waitFor: the condition never held");
}
