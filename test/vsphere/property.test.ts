// The property collector: RetrievePropertiesEx paged by maximum_objects, typed
// selections, get / getMany / find, container views, and WaitForUpdatesEx waiters.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { InvalidArgumentFault, ManagedObjectNotFoundFault, ProtocolError, VimFault } from "../../provider/vsphere/errors.js";
import { PropertyCollector, UpdateWaiter } from "../../provider/vsphere/property.js";
import { arrayOf, bool, int, long, moRef, str } from "../../provider/vsphere/schema.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const VMS = 1000;
const HOSTS = 3;
const PAGE = 7;
/** The names the simulator gives its VMs: round-robin over the hosts of DC0_C0. */
const VM_NAMES = Array.from({ length: VMS }, (_, i) => `DC0_C0_H${i % HOSTS}_VM${Math.floor(i / HOSTS)}`);

let sim: Vcsim;
/** maximumObjects 7: every multi-object read is paged. */
let paged: VimClient;
/** The default maximumObjects (100). */
let client: VimClient;
let pc: PropertyCollector;
/** Host name -> reference. */
let hosts: Map<string, MoRef>;

function connect(maximumObjects?: number): Promise<VimClient> {
  return VimClient.connect(simOptions(sim, maximumObjects === undefined ? {} : { maximumObjects }));
}

/** Round trips by method that `c` made during `fn`. */
async function roundTrips<T>(c: VimClient, fn: () => Promise<T>): Promise<{ result: T; calls: Record<string, number> }> {
  const before = { ...c.stats.byMethod };
  const result = await fn();
  const calls: Record<string, number> = {};
  for (const [k, v] of Object.entries(c.stats.byMethod)) if (v - (before[k] ?? 0) > 0) calls[k] = v - (before[k] ?? 0);
  return { result, calls };
}

beforeAll(async () => {
  sim = await startVcsim({ hosts: HOSTS, vms: VMS, powerOn: false });
  [paged, client] = await Promise.all([connect(PAGE), connect()]);
  pc = new PropertyCollector(client);
  const found = await pc.find(client.serviceContent.rootFolder, "HostSystem", z.object({ name: str }));
  hosts = new Map(found.map((h) => [h.props.name, h.obj]));
});
afterAll(async () => {
  await Promise.all([paged?.close(), client?.close()]);
  await sim?.stop();
});

describe("find, paged by maximumObjects", () => {
  it(`lists all ${VMS} VMs 7 at a time: 1 RetrievePropertiesEx and ${Math.ceil(VMS / PAGE) - 1} ContinueRetrievePropertiesEx`, async () => {
    expect(paged.options.maximumObjects).toBe(PAGE);
    await sim.control.resetStats();
    const { result: vms, calls } = await roundTrips(paged, () =>
      new PropertyCollector(paged).find(paged.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str, "runtime.powerState": str })),
    );
    const server = (await sim.control.stats()).methods;

    expect(vms).toHaveLength(VMS);
    expect(new Set(vms.map((v) => v.obj.value)).size).toBe(VMS);
    expect(vms.every((v) => v.obj instanceof MoRef && v.obj.type === "VirtualMachine")).toBe(true);
    expect(new Set(vms.map((v) => v.props.name))).toEqual(new Set(VM_NAMES));
    expect(new Set(vms.map((v) => v.props["runtime.powerState"]))).toEqual(new Set(["poweredOff"]));

    const continues = Math.ceil(VMS / PAGE) - 1;
    expect(continues).toBe(142);
    expect(server.RetrievePropertiesEx).toBe(1);
    expect(server.ContinueRetrievePropertiesEx).toBe(continues);
    expect(server.CancelRetrievePropertiesEx).toBeUndefined();
    expect(calls).toEqual({ CreateContainerView: 1, RetrievePropertiesEx: 1, ContinueRetrievePropertiesEx: continues, DestroyView: 1 });
    // The server saw exactly the calls the client counted (nothing hidden, nothing retried).
    expect(server).toEqual(calls);

    // Each page's objects keep their own properties: spot-check across pages.
    for (const i of [0, PAGE - 1, PAGE, 500, VMS - 1]) {
      const v = vms[i]!;
      expect(await pc.get(v.obj, z.object({ name: str }))).toEqual({ name: v.props.name });
    }
  });

  it("takes a per-call maxObjects over the client's maximumObjects", async () => {
    const { result: vms, calls } = await roundTrips(paged, () =>
      new PropertyCollector(paged).find(paged.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }), { maxObjects: 400 }),
    );
    expect(vms).toHaveLength(VMS);
    expect(calls).toMatchObject({ RetrievePropertiesEx: 1, ContinueRetrievePropertiesEx: 2 });
  });

  it("answers in one round trip when everything fits on a page", async () => {
    const { result: found, calls } = await roundTrips(paged, () =>
      new PropertyCollector(paged).find(paged.serviceContent.rootFolder, "HostSystem", z.object({ name: str })),
    );
    expect(found.map((h) => h.props.name).sort()).toEqual(["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]);
    expect(calls).toEqual({ CreateContainerView: 1, RetrievePropertiesEx: 1, DestroyView: 1 });
  });

  it("searches only the container's direct children with recursive: false", async () => {
    const root = client.serviceContent.rootFolder;
    expect(await pc.find(root, "HostSystem", z.object({ name: str }), { recursive: false })).toEqual([]);
    const dcs = await pc.find(root, "Datacenter", z.object({ name: str }), { recursive: false });
    expect(dcs.map((d) => d.props.name)).toEqual(["DC0"]);
  });

  it("destroys its ContainerView afterwards", async () => {
    const finder = new PropertyCollector(client);
    const spy = vi.spyOn(finder, "createContainerView");
    await sim.control.resetStats();
    await finder.find(client.serviceContent.rootFolder, "HostSystem", z.object({ name: str }));
    expect(spy).toHaveBeenCalledTimes(1);
    const view = (await spy.mock.results[0]!.value) as MoRef;
    expect(view.type).toBe("ContainerView");
    expect((await sim.control.stats()).methods).toMatchObject({ CreateContainerView: 1, DestroyView: 1 });
    await expect(pc.get(view, z.object({ view: arrayOf(moRef) }))).rejects.toBeInstanceOf(ManagedObjectNotFoundFault);
  });

  it("destroys its ContainerView also when the selection does not match, and names the object", async () => {
    const finder = new PropertyCollector(client);
    const spy = vi.spyOn(finder, "createContainerView");
    await sim.control.resetStats();
    const err = await finder.find(client.serviceContent.rootFolder, "HostSystem", z.object({ name: long })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe("ProtocolError");
    expect((err as Error).message).toMatch(/^HostSystem host-\d+: unexpected properties: .*name/s);
    expect((await sim.control.stats()).methods).toMatchObject({ CreateContainerView: 1, DestroyView: 1 });
    const view = (await spy.mock.results[0]!.value) as MoRef;
    await expect(pc.get(view, z.object({ view: arrayOf(moRef) }))).rejects.toBeInstanceOf(ManagedObjectNotFoundFault);
  });
});

describe("retrieve", () => {
  it("returns raw values (text, MoRefs) and pages by its maxObjects argument", async () => {
    const refs = [...hosts.values()];
    const { result, calls } = await roundTrips(client, () =>
      pc.retrieve([{ propSet: [{ type: "HostSystem", pathSet: ["name", "runtime.inMaintenanceMode", "parent"] }], objectSet: refs.map((obj) => ({ obj })) }], 2),
    );
    expect(calls).toEqual({ RetrievePropertiesEx: 1, ContinueRetrievePropertiesEx: 1 });
    expect(result).toHaveLength(HOSTS);
    for (const o of result) {
      expect(hosts.get(o.props.name as string)).toEqual(o.obj);
      // Untyped: a boolean is still its text.
      expect(o.props["runtime.inMaintenanceMode"]).toBe("false");
      expect(o.props.parent).toBeInstanceOf(MoRef);
      expect(o.missing).toEqual([]);
    }
  });

  it("reads several filter specs in one call", async () => {
    const [host] = hosts.values();
    const result = await pc.retrieve([
      { propSet: [{ type: "HostSystem", pathSet: ["name"] }], objectSet: [{ obj: host! }] },
      { propSet: [{ type: "Folder", pathSet: ["name"] }], objectSet: [{ obj: client.serviceContent.rootFolder }] },
    ]);
    expect(result.map((o) => o.obj.type).sort()).toEqual(["Folder", "HostSystem"]);
    expect(result.find((o) => o.obj.type === "HostSystem")?.props.name).toBe("DC0_C0_H0");
  });

  it("reports the paths the server could not read in `missing`, with their typed fault", async () => {
    const host = hosts.get("DC0_C0_H0")!;
    const [o] = await pc.retrieve([{ propSet: [{ type: "HostSystem", pathSet: ["name", "noSuchProperty"] }], objectSet: [{ obj: host }] }]);
    expect(o?.props.name).toBe("DC0_C0_H0");
    expect(o?.missing.map((m) => m.path)).toEqual(["noSuchProperty"]);
    expect(o?.missing[0]?.fault).toBeInstanceOf(VimFault);
    expect(o?.missing[0]?.fault.code).toBe("InvalidProperty");
  });
});

describe("typed selections", () => {
  it("reads ints, longs, booleans and MoRefs of a host", async () => {
    const h = await pc.get(
      hosts.get("DC0_C0_H1")!,
      z.object({
        name: str,
        "summary.hardware.numCpuCores": int,
        "summary.hardware.memorySize": long,
        "runtime.inMaintenanceMode": bool,
        parent: moRef,
      }),
    );
    expect(h.name).toBe("DC0_C0_H1");
    expect(Number.isInteger(h["summary.hardware.numCpuCores"])).toBe(true);
    expect(h["summary.hardware.numCpuCores"]).toBeGreaterThan(0);
    // A byte count beyond 32 bits stays exact.
    expect(h["summary.hardware.memorySize"]).toBeTypeOf("number");
    expect(h["summary.hardware.memorySize"]).toBeGreaterThan(2 ** 31);
    expect(h["runtime.inMaintenanceMode"]).toBe(false);
    expect(h.parent).toBeInstanceOf(MoRef);
    expect(h.parent.type).toBe("ClusterComputeResource");
  });

  it("reads a VM's hardware as numbers and its references as MoRefs that can be read in turn", async () => {
    const vm = (await pc.find(client.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }))).find((v) => v.props.name === "DC0_C0_H2_VM5");
    expect(vm).toBeDefined();
    const props = await pc.get(
      vm!.obj,
      z.object({
        "config.hardware.numCPU": int,
        "config.hardware.memoryMB": int,
        "config.template": bool,
        "runtime.host": moRef,
        resourcePool: moRef,
      }),
    );
    expect(props).toMatchObject({ "config.hardware.numCPU": 1, "config.hardware.memoryMB": 256, "config.template": false });
    expect(props.resourcePool.type).toBe("ResourcePool");
    expect(props["runtime.host"]).toEqual(hosts.get("DC0_C0_H2"));
    expect((await pc.get(props["runtime.host"], z.object({ name: str }))).name).toBe("DC0_C0_H2");
  });

  it("reads a datastore's capacity as a number and accessible as true", async () => {
    const [ds] = await pc.find(
      client.serviceContent.rootFolder,
      "Datastore",
      z.object({ "summary.name": str, "summary.capacity": long, "summary.freeSpace": long, "summary.accessible": bool }),
    );
    expect(ds?.props["summary.accessible"]).toBe(true);
    expect(ds?.props["summary.capacity"]).toBeGreaterThan(0);
    expect(ds?.props["summary.freeSpace"]).toBeLessThanOrEqual(ds!.props["summary.capacity"]);
  });
});

describe("get", () => {
  it("reads one object in one round trip", async () => {
    const host = hosts.get("DC0_C0_H0")!;
    const { result, calls } = await roundTrips(client, () => pc.get(host, z.object({ name: str })));
    expect(result).toEqual({ name: "DC0_C0_H0" });
    expect(calls).toEqual({ RetrievePropertiesEx: 1 });
  });

  it("rejects with ManagedObjectNotFoundFault for an object that does not exist", async () => {
    const ref = new MoRef("VirtualMachine", "vm-999999");
    const err = await pc.get(ref, z.object({ name: str })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagedObjectNotFoundFault);
    expect((err as ManagedObjectNotFoundFault).code).toBe("ManagedObjectNotFound");
    expect((err as ManagedObjectNotFoundFault).obj).toEqual(ref);
  });

  it("rejects with a ProtocolError naming the object when the selection does not match", async () => {
    const host = hosts.get("DC0_C0_H2")!;
    const err = await pc.get(host, z.object({ name: long })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toContain(`HostSystem ${host.value}`);
    expect((err as Error).message).toMatch(/name/);
  });

  it("says which paths were unreadable when a selected property is missing", async () => {
    const host = hosts.get("DC0_C0_H0")!;
    const err = await pc.get(host, z.object({ name: str, noSuchProperty: str })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toContain(`HostSystem ${host.value}`);
    expect((err as Error).message).toMatch(/unreadable: noSuchProperty \(InvalidProperty\)/);
  });
});

describe("getMany", () => {
  it("reads several hosts in one call", async () => {
    const refs = [...hosts.values()];
    const { result, calls } = await roundTrips(client, () =>
      pc.getMany(refs, z.object({ name: str, "runtime.connectionState": str, "runtime.inMaintenanceMode": bool })),
    );
    expect(calls).toEqual({ RetrievePropertiesEx: 1 });
    expect(result).toHaveLength(HOSTS);
    for (const h of result) {
      expect(h.obj).toEqual(hosts.get(h.props.name));
      expect(h.props["runtime.connectionState"]).toBe("connected");
      expect(h.props["runtime.inMaintenanceMode"]).toBe(false);
    }
    expect(result.map((h) => h.props.name).sort()).toEqual([...hosts.keys()].sort());
  });

  it("pages many objects by maximumObjects", async () => {
    const vms = (await pc.find(client.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }))).slice(0, 20);
    const { result, calls } = await roundTrips(paged, () => new PropertyCollector(paged).getMany(vms.map((v) => v.obj), z.object({ name: str })));
    expect(calls).toEqual({ RetrievePropertiesEx: 1, ContinueRetrievePropertiesEx: 2 });
    expect(new Map(result.map((r) => [r.obj.value, r.props.name]))).toEqual(new Map(vms.map((v) => [v.obj.value, v.props.name])));
  });

  it("costs nothing for no objects", async () => {
    const { result, calls } = await roundTrips(client, () => pc.getMany([], z.object({ name: str })));
    expect(result).toEqual([]);
    expect(calls).toEqual({});
  });

  // Its documentation: "(missing ones are left out)".
  it("leaves out objects that do not exist", async () => {
    const refs = [hosts.get("DC0_C0_H0")!, new MoRef("HostSystem", "host-999999"), hosts.get("DC0_C0_H1")!];
    const result = await pc.getMany(refs, z.object({ name: str }));
    expect(result.map((h) => h.props.name).sort()).toEqual(["DC0_C0_H0", "DC0_C0_H1"]);
  });
});

describe("createContainerView", () => {
  const ViewProps = z.object({ view: arrayOf(moRef), type: arrayOf(str), recursive: bool });

  it("makes a recursive view of every object of the types asked for", async () => {
    const view = await pc.createContainerView(client.serviceContent.rootFolder, ["HostSystem", "ClusterComputeResource"], true);
    try {
      expect(view.type).toBe("ContainerView");
      const v = await pc.get(view, ViewProps);
      expect(v.recursive).toBe(true);
      expect(v.type.sort()).toEqual(["ClusterComputeResource", "HostSystem"]);
      expect(v.view.filter((r) => r.type === "HostSystem").map((r) => r.value).sort()).toEqual([...hosts.values()].map((r) => r.value).sort());
      expect(v.view.filter((r) => r.type === "ClusterComputeResource")).toHaveLength(1);
    } finally {
      await client.invoke("DestroyView", view);
    }
    await expect(pc.get(view, ViewProps)).rejects.toBeInstanceOf(ManagedObjectNotFoundFault);
  });

  it("makes a flat view of the container's children only", async () => {
    const root = client.serviceContent.rootFolder;
    const hostsView = await pc.createContainerView(root, ["HostSystem"], false);
    const dcView = await pc.createContainerView(root, ["Datacenter"], false);
    try {
      expect((await pc.get(hostsView, ViewProps)).view).toEqual([]);
      expect((await pc.get(dcView, ViewProps)).view.map((r) => r.type)).toEqual(["Datacenter"]);
    } finally {
      await client.invoke("DestroyView", hostsView);
      await client.invoke("DestroyView", dcView);
    }
  });

  it("refuses a container that is not one (a VM)", async () => {
    const [vm] = await pc.find(client.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }));
    const err = await pc.createContainerView(vm!.obj, ["VirtualMachine"], true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentFault);
    expect((err as InvalidArgumentFault).invalidProperty).toBe("container");
  });
});

describe("UpdateWaiter", () => {
  const NameSel = z.object({ name: str });

  async function vmNamed(name: string): Promise<MoRef> {
    const all = await pc.find(client.serviceContent.rootFolder, "VirtualMachine", NameSel);
    const hit = all.find((v) => v.props.name === name);
    if (!hit) throw new Error(`no VM ${name}`);
    return hit.obj;
  }

  it("uses a private collector, first reports current values, then only what changed", async () => {
    const vm = await vmNamed("DC0_C0_H0_VM3");
    const waiter = await UpdateWaiter.create(client);
    try {
      expect(waiter.collector.type).toBe("PropertyCollector");
      expect(waiter.collector.equals(client.serviceContent.propertyCollector)).toBe(false);
      const filter = await waiter.watch(vm, ["name", "runtime.powerState"]);
      expect(filter.type).toBe("PropertyFilter");

      const first = await waiter.next(5);
      expect([...first.keys()]).toEqual([vm.toString()]);
      expect(first.get(vm.toString())).toEqual({ name: "DC0_C0_H0_VM3", "runtime.powerState": "poweredOff" });

      // Nothing changed: the wait ends empty at maxWaitSeconds.
      expect((await waiter.next(1)).size).toBe(0);

      await runTask(client, "Rename_Task", vm, { newName: "waiter-renamed" });
      const changed = await waiter.next(10);
      expect(changed.get(vm.toString())).toEqual({ name: "waiter-renamed" });
    } finally {
      await waiter.destroy();
      await runTask(client, "Rename_Task", vm, { newName: "DC0_C0_H0_VM3" });
    }
  });

  it("never hands one waiter's updates to another", async () => {
    const [a, b] = await Promise.all([vmNamed("DC0_C0_H1_VM3"), vmNamed("DC0_C0_H2_VM3")]);
    const [wa, wb] = await Promise.all([UpdateWaiter.create(client), UpdateWaiter.create(client)]);
    try {
      await wa.watch(a, ["name"]);
      await wb.watch(b, ["name"]);
      expect([...(await wa.next(5)).keys()]).toEqual([a.toString()]);
      expect([...(await wb.next(5)).keys()]).toEqual([b.toString()]);

      await runTask(client, "Rename_Task", a, { newName: "only-a-changed" });
      const [ua, ub] = await Promise.all([wa.next(10), wb.next(1)]);
      expect(ua.get(a.toString())).toEqual({ name: "only-a-changed" });
      expect(ub.size).toBe(0);
    } finally {
      await Promise.all([wa.destroy(), wb.destroy()]);
      await runTask(client, "Rename_Task", a, { newName: "DC0_C0_H1_VM3" });
    }
  });

  it("destroys its collector: a later wait fails with ManagedObjectNotFound naming it", async () => {
    const vm = await vmNamed("DC0_C0_H0_VM4");
    const waiter = await UpdateWaiter.create(client);
    await waiter.watch(vm, ["name"]);
    const { calls } = await roundTrips(client, () => waiter.destroy());
    expect(calls).toEqual({ DestroyPropertyCollector: 1 });
    const err = await waiter.next(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagedObjectNotFoundFault);
    expect((err as ManagedObjectNotFoundFault).obj).toEqual(waiter.collector);
  });
});
