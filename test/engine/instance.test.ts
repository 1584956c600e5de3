// Instance end to end: program -> serialized dynamic provider -> the real dynamic-provider
// process -> driver -> the simulator, read back from vCenter (controller, disk backing
// chain with its parent in the image cache, NIC backings, extraConfig, serial port URI,
// VNC ports), through create, update in place, refresh (drift, a VM deleted outside),
// import, failures under injected faults, concurrency, and destroy.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, listFolder } from "../../provider/vsphere/datastore.js";
import { FileNotFoundFault } from "../../provider/vsphere/errors.js";
import { getCluster, getDatacenter, listVms, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { removeVm, setPowerState } from "../../provider/vsphere/vm-lifecycle.js";
import { readVm } from "../../provider/vsphere/vm-read.js";
import type { VmView } from "../../provider/vsphere/vm-view.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DynamicProviderProcess } from "./provider-process.js";
import { simulatorStack, type HarnessResult, type HarnessStack, type StateResource } from "./index.js";

const PASSWORD = "pw-Instance-7e2a";
const SERIAL = "telnet://serial.example.net:7000";
const SERIAL_PROXY = "telnet://proxy.example.net:13370";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dir: string;
let images: ImageDir;
let DS: string[];
let sparse: string;
let iso: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 2, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, "DC0_C0");
  DS = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).sort();
  dir = mkdtempSync(join(tmpdir(), "instance-harness-"));
  images = await ImageDir.create();
  sparse = await images.sparseVmdk("base.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
  iso = await images.iso("installer.iso");
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

type Spec = { images?: Record<string, unknown>; portGroups?: Record<string, unknown>; instances?: Record<string, Record<string, unknown>> };

function stack(name: string, spec: Spec, config: Record<string, string> = {}): HarnessStack & { set(next: Spec): void } {
  const s = simulatorStack(sim, {
    dir,
    name,
    program: "test/engine/programs/instances.ts",
    password: PASSWORD,
    config: { "vmware:cachePrefix": name, ...config, "insttest:spec": JSON.stringify(spec) },
  });
  return Object.assign(s, {
    set(next: Spec) {
      s.opts.config["insttest:spec"] = JSON.stringify(next);
    },
  });
}

function ok(r: HarnessResult): HarnessResult {
  expect(r.errors).toEqual([]);
  return r;
}
function resource(s: HarnessStack, name: string): StateResource {
  const r = s.state().resources.find((x) => x.name === name);
  if (!r) throw new Error(`no ${name} in the state`);
  return r;
}
const outs = (s: HarnessStack, name: string) => resource(s, name).outputs as Record<string, any>;
const ev = (r: HarnessResult, name: string) => r.events.find((e) => e.key.endsWith(`::${name}`));

async function vmOf(s: HarnessStack, name: string): Promise<VmView> {
  const view = await readVm(client, new MoRef("VirtualMachine", outs(s, name).vmId));
  if (!view) throw new Error(`VM of ${name} is gone`);
  return view;
}

/** Names in a datastore folder ([] when it does not exist). */
async function names(path: DatastorePath): Promise<string[]> {
  try {
    return (await listFolder(client, dc, path)).map((e) => e.name).sort();
  } catch (err) {
    if (err instanceof FileNotFoundFault) return [];
    throw err;
  }
}

async function vmNames(): Promise<string[]> {
  return (await listVms(client, dc.vmFolder)).map((v) => v.name);
}

describe("Instance", () => {
  it("boots an Image's linked clones on a PortGroup: one CreateVM_Task each, read back from vCenter", async () => {
    const s = stack(
      "three",
      {
        images: { img: { source: sparse, osType: "ubuntu64Guest" } },
        portGroups: { net: { name: "inst-net", vlanId: 10 } },
        instances: {
          web: { image: "img", cpus: 1, memoryMb: 128, networks: [{ portGroup: "net" }], metadata: { role: "web" } },
          db: { image: "img", cpus: 2, coresPerSocket: 2, memoryMb: 256, rootDiskGb: 1, networks: [{ portGroup: "net", model: "e1000", macAddress: "00:50:56:3f:00:01" }] },
          batch: { image: "img", cpus: 1, memoryMb: 64, powerState: "off", displayName: "Batch worker", networks: [{ portGroup: "net" }, { portGroup: "VM Network", model: "e1000e" }] },
        },
      },
      { "vmware:serialPortServiceUri": SERIAL, "vmware:serialPortProxyUri": SERIAL_PROXY, "vmware:consoleDelaySeconds": "2" },
    );
    const up = ok(await s.up());
    for (const n of ["web", "db", "batch"]) expect(ev(up, n)?.op).toBe("create");
    const imageId = outs(s, "img").imageId as string;

    const web = await vmOf(s, "web");
    const db = await vmOf(s, "db");
    const batch = await vmOf(s, "batch");
    // Identity: the VM's name is its instance uuid, the resource id.
    expect(web.name).toBe(resource(s, "web").id);
    expect(web.instanceUuid).toBe(resource(s, "web").id);
    expect(web.annotation.split("\n")[0]).toBe("web");
    expect(web.annotation).toContain("urn:pulumi:");
    expect(batch.annotation.split("\n")[0]).toBe("Batch worker");
    expect(web.guestId).toBe("ubuntu64Guest");
    // The controller of the image's adapter type; the disk a delta on the cached base (db: on the sized base).
    for (const v of [web, db, batch]) {
      expect(v.controllers.map((c) => c.type)).toContain("VirtualLsiLogicController");
      expect(v.disks).toHaveLength(1);
      expect(v.disks[0]!.controllerType).toBe("VirtualLsiLogicController");
    }
    const ds = DatastorePath.parse(web.disks[0]!.parents[0]!).datastore;
    expect(web.disks[0]!.parents[0]).toBe(`[${ds}] three_base/${imageId}/${imageId}.vmdk`);
    expect(web.disks[0]!.fileName).toMatch(new RegExp(`^\\[${ds}\\] ${web.name}/`));
    const dbDs = DatastorePath.parse(db.disks[0]!.parents[0]!).datastore;
    expect(db.disks[0]!.parents[0]).toBe(`[${dbDs}] three_base/${imageId}/${imageId}.1.vmdk`);
    expect(db.disks[0]!.capacityKb).toBe(1024 * 1024);
    expect(outs(s, "db").rootDisk.parents[0]).toBe(db.disks[0]!.parents[0]);
    expect(outs(s, "db").linkedCloneDisk).toBe(true);
    // Flavor.
    expect([db.cpus, db.coresPerSocket, db.memoryMb]).toEqual([2, 2, 256]);
    // NICs: the PortGroup's network, models, a fixed MAC; vCenter's generated ones in the outputs.
    expect(web.nics.map((n) => [n.model, n.backing])).toEqual([["vmxnet3", expect.objectContaining({ kind: "standard", networkName: "inst-net" })]]);
    expect(db.nics[0]).toMatchObject({ model: "e1000", macAddress: "00:50:56:3f:00:01", addressType: "manual" });
    expect(batch.nics.map((n) => [n.model, (n.backing as { networkName?: string }).networkName])).toEqual([
      ["vmxnet3", "inst-net"],
      ["e1000e", "VM Network"],
    ]);
    expect(outs(s, "web").macAddresses).toEqual([web.nics[0]!.macAddress]);
    // Serial port, console delay, metadata, Nova's extraConfig.
    expect(web.serialPorts[0]).toMatchObject({ serviceUri: SERIAL, proxyUri: SERIAL_PROXY, direction: "server" });
    expect(web.extraConfig["keyboard.typematicMinDelay"]).toBe("2000000");
    expect(web.metadata).toEqual({ role: "web" });
    expect(web.extraConfig["nvp.vm-uuid"]).toBe(web.instanceUuid);
    // Power and consoles: VNC ports unique; the host named.
    expect([web.powerState, db.powerState, batch.powerState]).toEqual(["poweredOn", "poweredOn", "poweredOff"]);
    const ports = [web, db, batch].map((v) => v.vncPort);
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(5900);
    expect(outs(s, "web").vncPort).toBe(web.vncPort);
    expect(outs(s, "web").host).toBe(web.hostName);
    expect(outs(s, "web").vncHost).toBe(web.hostName);

    // Nothing to change: a second up is all "same".
    const again = ok(await s.up());
    for (const n of ["web", "db", "batch"]) expect(ev(again, n)?.op).toBe("same");

    // Destroy: the VMs and their folders go; the cached base goes with its Image (nothing uses it now).
    ok(await s.destroy());
    const left = await vmNames();
    for (const v of [web, db, batch]) {
      expect(left).not.toContain(v.name);
      expect(await names(new DatastorePath(DatastorePath.parse(v.vmxPath).datastore, v.name))).toEqual([]);
    }
  });
});
