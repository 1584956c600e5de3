// Round trips per Instance operation, counted by the simulator's per-method statistics
// through the real dynamic-provider process (one process per operation, as with the
// CLI). Session calls (service content, login, logout) are left out: they are the same
// for every operation. The instance is a linked clone of an Image already cached on
// the datastore, on a cluster with DRS (vCenter picks the host: no host read).
//
// Each operation is pinned within one call of what it costs now, and beside it the
// least the API allows, and how (RetrievePropertiesEx takes several filter specs, so
// reads of unrelated objects can share one round trip; a task's end is learnt by one
// read of its info when the task is done by then, as on the simulator):
// - create (check + create), measured 8: check asks nothing (the Image's outputs carry
//   the image); create reads the cluster (1), the datastores (free space, mounts and
//   their browsers) together with every VM's VNC port (1), searches the image folder for
//   age markers to remove before the VM links to the image (2: SearchDatastore_Task and
//   its read — the creator's half of the cache sweeper's protocol, cache-sweep.ts; the
//   browser came with the datastores), CreateVM_Task and its read together with every
//   VM's VNC port again, now that the VM exists, for a collision with another process's
//   VM (2), PowerOnVM_Task and its read together with the VM as made (2). Least: 7 = one
//   placement read (a traversal from the root folder to the cluster, its hosts and
//   datastores with their free space and browsers, and every VM's extraConfig and host),
//   the marker search and its read (2), CreateVM_Task, one read of its task with every
//   VM's VNC port, PowerOnVM_Task, one read of its task with the VM. The one extra: the
//   cluster read apart from the datastores (the cluster's datastores are known only
//   once it is read; a traversal from the root could carry both).
// - up with nothing to change, measured 0: check and diff compare inputs with the state
//   (the Image's check asks nothing either). Least: 0.
// - refresh, measured 1 = least: the VM by its id with its host's name
//   (ManagedObjectNotFound says it is gone; the datacenter is looked up only to search a
//   re-registered VM by its instance uuid).
// - update of cpus and memory with hot add on (check + diff + update), measured 3 =
//   least: the VM as it is (the plan depends on its power state and hot-add flags),
//   ReconfigVM_Task, one read of its task together with the VM as updated (the
//   datacenter only for a linked clone's growth).
// - destroy (the instance left out of the program; the Image stays), measured 6: the
//   datacenter together with the VM's power state and folder (one read), PowerOffVM_Task
//   and its read, UnregisterVM, DeleteDatastoreFile_Task of its folder and its read.
//   Least: 5 = PowerOffVM_Task and its read (a VM off already answers InvalidPowerState),
//   UnregisterVM, DeleteDatastoreFile_Task and its read: the VM's folder is in the state
//   (vmxPath), and the datacenter's managed object id could be (the state holds only its
//   name, so one read finds it now). We read the VM's folder as it is rather than trust
//   the state's (a storage vMotion moves it), which costs nothing beside the datacenter.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageDir } from "../support/images.js";
import { startVcsim, type SimulatorStats, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, simulatorStack, type HarnessResult } from "./index.js";

const PASSWORD = "pw-InstRt-3b9e";
const SESSION_METHODS = new Set(["RetrieveServiceContent", "Login", "Logout", "SessionIsActive", "CurrentTime"]);
let sim: Vcsim;
let dir: string;
let images: ImageDir;
const measured: Record<string, { calls: number; least: number; methods: Record<string, number> }> = {};

beforeAll(async () => {
  // DRS on (the simulator's default): vCenter places the VM, so no host is read.
  sim = await startVcsim({ tls: true, hosts: 3, password: PASSWORD });
  dir = mkdtempSync(join(tmpdir(), "instance-round-trips-"));
  images = await ImageDir.create();
});
afterAll(async () => {
  // The table the report quotes.
  console.log(JSON.stringify(measured, null, 1));
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function apiCalls(stats: SimulatorStats): { calls: number; methods: Record<string, number> } {
  const methods = Object.fromEntries(Object.entries(stats.methods).filter(([m]) => !SESSION_METHODS.has(m)));
  return { calls: Object.values(methods).reduce((a, b) => a + b, 0), methods };
}

/** Runs one operation; records and returns its calls (and which) against the least the API allows. */
async function count(label: string, least: number, op: () => Promise<HarnessResult>): Promise<{ calls: number; methods: Record<string, number>; result: HarnessResult }> {
  await sim.control.resetStats();
  const result = await op();
  expect(result.errors).toEqual([]);
  const { calls, methods } = apiCalls(await sim.control.stats());
  measured[label] = { calls, least, methods };
  // Fewer than the API allows means the counting missed calls.
  expect(calls).toBeGreaterThanOrEqual(least);
  return { calls, methods, result };
}

const ev = (r: HarnessResult, name: string) => r.events.find((e) => e.key.endsWith(`::${name}`))?.op;

describe("round trips per Instance operation (linked clone, image cached, DRS)", () => {
  it("create, up with nothing to change, refresh, hot cpus + memory update and destroy each within one call of what they cost", async () => {
    const vmdk = await images.sparseVmdk("rt.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
    const img = { source: vmdk, osType: "ubuntu64Guest" };
    const vm = { image: "img", cpus: 1, memoryMb: 1024, cpuHotAdd: true, memoryHotAdd: true, networks: [{ portGroup: "VM Network" }] };
    const s = simulatorStack(sim, { dir, name: "inst", program: "test/engine/programs/instances.ts", password: PASSWORD, config: { "vmware:cachePrefix": "rt" } });
    const spec = (x: object) => ({ ...s.opts.config, "insttest:spec": JSON.stringify(x) });
    const imageOnly = spec({ images: { img } });

    // The image cached first: what follows counts the instance alone.
    expect((await s.up(imageOnly)).errors).toEqual([]);
    const imageOuts = s.state().resources.find((r) => r.name === "img")!.outputs as { cached: Record<string, unknown> };
    expect(Object.keys(imageOuts.cached)).toHaveLength(1);

    const create = await count("create (check + create)", 7, () => s.up(spec({ images: { img }, instances: { vm } })));
    expect(ev(create.result, "vm")).toBe("create");
    expect(ev(create.result, "img")).toBe("same");
    expect(create.calls).toBeLessThanOrEqual(8 + 1);
    expect(create.methods).toMatchObject({ CreateVM_Task: 1, PowerOnVM_Task: 1 });
    const made = s.state().resources.find((r) => r.name === "vm")!;
    const o = made.outputs as { linkedCloneDisk: boolean; rootDisk: { parents: string[] }; vncPort: number; powerState: string };
    // The instance counted is the one meant: a linked clone of the cached base, on, with a VNC port.
    expect(o.linkedCloneDisk).toBe(true);
    expect(o.rootDisk.parents[0]).toContain(`rt_base/`);
    expect(o.powerState).toBe("on");
    expect(o.vncPort).toBeGreaterThanOrEqual(5900);

    const same = await count("up with nothing to change", 0, () => s.up(spec({ images: { img }, instances: { vm } })));
    expect(ev(same.result, "vm")).toBe("same");
    expect(same.calls).toBeLessThanOrEqual(0 + 1);

    // The instance refreshed alone: a state holding only it (the Image's refresh has its own count).
    const alone = new HarnessStack({ ...s.opts, stateFile: join(dir, "instance-only.json") });
    writeFileSync(alone.opts.stateFile, JSON.stringify({ resources: [made] }));
    const refresh = await count("refresh", 1, () => alone.refresh());
    expect(ev(refresh.result, "vm")).toBe("same");
    expect(refresh.calls).toBeLessThanOrEqual(1 + 1);

    const update = await count("update cpus 1 → 2, memoryMb 1024 → 2048, hot add on (check + diff + update)", 3, () =>
      s.up(spec({ images: { img }, instances: { vm: { ...vm, cpus: 2, memoryMb: 2048 } } })),
    );
    expect(ev(update.result, "vm")).toBe("update");
    expect(update.calls).toBeLessThanOrEqual(3 + 1);
    // Live: one reconfigure, no power cycle.
    expect(update.methods).toMatchObject({ ReconfigVM_Task: 1 });
    expect(update.methods.PowerOffVM_Task).toBeUndefined();
    const updated = s.state().resources.find((r) => r.name === "vm")!.outputs as { cpus: number; memoryMb: number; powerState: string; vmId: string };
    expect([updated.cpus, updated.memoryMb, updated.powerState]).toEqual([2, 2048, "on"]);

    const destroy = await count("destroy (instance left out; the Image stays)", 5, () => s.up(imageOnly));
    expect(ev(destroy.result, "vm")).toBe("delete");
    expect(destroy.calls).toBeLessThanOrEqual(6 + 1);
    expect(destroy.methods).toMatchObject({ UnregisterVM: 1, DeleteDatastoreFile_Task: 1 });
    expect(destroy.methods.Destroy_Task).toBeUndefined();
    expect(s.state().resources.map((r) => r.name)).toEqual(["img"]);

    expect((await s.destroy()).errors).toEqual([]);
  });
});
