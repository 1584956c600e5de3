// VNC ports: which are taken (every VM's RemoteDisplay.vnc.port, read in one round trip
// from the simulator), and which one a new VM gets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { getCluster, getDatacenter, listVms, type Cluster } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { NoFreeVncPortError, VNC_PORTS, pickVncPort, portsTakenOn, vncPortsInUse, type VncUse } from "../../provider/vsphere/vnc.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

describe("pickVncPort", () => {
  it("takes a free port of the seed's range, from a place its seed decides", () => {
    const a = pickVncPort([], "instance-a");
    expect(a).toBeGreaterThanOrEqual(VNC_PORTS.first);
    expect(a).toBeLessThanOrEqual(VNC_PORTS.last);
    expect(pickVncPort([], "instance-a")).toBe(a);
    // Different names start at different places: 20 creators rarely want one port.
    const firsts = new Set(Array.from({ length: 20 }, (_, i) => pickVncPort([], `instance-${i}`)));
    expect(firsts.size).toBeGreaterThan(15);
    expect(pickVncPort([a], "instance-a")).toBe(a === VNC_PORTS.last ? VNC_PORTS.first : a + 1);
  });

  it("says so when every port is taken", () => {
    const all = Array.from({ length: VNC_PORTS.last - VNC_PORTS.first + 1 }, (_, i) => VNC_PORTS.first + i);
    expect(() => pickVncPort(all, "x")).toThrow(NoFreeVncPortError);
    expect(pickVncPort(all.slice(1), "x")).toBe(VNC_PORTS.first);
  });

  it("counts the ports of VMs on the given hosts, and of VMs whose host is unknown", () => {
    const h1 = new MoRef("HostSystem", "host-1");
    const h2 = new MoRef("HostSystem", "host-2");
    const use = (port: number, host: MoRef | undefined): VncUse => ({ vm: new MoRef("VirtualMachine", `vm-${port}`), name: `vm${port}`, host, port, enabled: true });
    expect(portsTakenOn([use(5900, h1), use(5901, h2), use(5902, undefined)], [h1])).toEqual([5900, 5902]);
  });
});

describe("vncPortsInUse against the simulator", () => {
  let sim: Vcsim;
  let client: VimClient;
  let cluster: Cluster;
  beforeAll(async () => {
    sim = await startVcsim({ clusters: 1, hosts: 2, vms: 3 });
    client = await VimClient.connect(simOptions(sim));
    cluster = await getCluster(client, await getDatacenter(client), sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("reads every VM's port and host in one round trip", async () => {
    const vms = (await listVms(client, client.serviceContent.rootFolder)).slice(0, 2);
    expect(vms).toHaveLength(2);
    for (const [i, vm] of vms.entries()) {
      await runTask(client, "ReconfigVM_Task", vm.ref, {
        spec: { extraConfig: [{ key: "RemoteDisplay.vnc.enabled", value: "true" }, { key: "RemoteDisplay.vnc.port", value: String(5910 + i) }] },
      });
    }
    await sim.control.resetStats();
    const uses = await vncPortsInUse(client);
    expect((await sim.control.stats()).methods.RetrievePropertiesEx).toBe(1);
    expect(uses.map((u) => [u.name, u.port, u.enabled]).sort()).toEqual(vms.map((v, i) => [v.name, 5910 + i, true]).sort());
    for (const u of uses) expect(u.host?.type).toBe("HostSystem");
    const taken = portsTakenOn(uses, cluster.hosts);
    expect(taken.sort()).toEqual([5910, 5911].filter((_, i) => cluster.hosts.some((h) => h.equals(uses.find((u) => u.port === 5910 + i)!.host!))));
    expect(pickVncPort(taken, "new-vm")).not.toBeOneOf(taken);
  });
});
