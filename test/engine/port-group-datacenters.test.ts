// A distributed port group belongs to its switch, not to vmware:clusterName: two
// datacenters, each with a cluster and a switch named DVS0.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { getDistributedPortGroup } from "../../provider/vsphere/network.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, simulatorStack } from "./index.js";

const PASSWORD = "pw-Dcs-77e0";
let sim: Vcsim;
let client: VimClient;
let dir: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, datacenters: 2, hosts: 2, vms: 0, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dir = mkdtempSync(join(tmpdir(), "pg-dcs-"));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function stack(name: string, extra: Record<string, string>): HarnessStack {
  return simulatorStack(sim, { dir, name, password: PASSWORD, config: extra });
}

describe("a distributed port group in two datacenters", () => {
  it("asks for the datacenter when the switch name is in several", async () => {
    const s = stack("ambiguous", { "pgtest:name": "pg-amb", "pgtest:distributed": "true" });
    const res = await s.preview();
    const failed = res.events.find((e) => e.op === "check-failed");
    expect(failed).toMatchObject({
      key: "pulumi-nodejs:dynamic/vmware:PortGroup::distributed",
      failures: [{ property: "datacenter", reason: 'distributed switch "DVS0" exists in several datacenters (DC0, DC1): set datacenter' }],
    });
  });

  it("goes on a switch in another datacenter than vmware:clusterName's, and stays when the cluster config changes", async () => {
    const s = stack("other-dc", { "pgtest:name": "pg-dcs", "pgtest:distributed": "true", "pgtest:dvDatacenter": "DC1", "pgtest:dvName": "pg-dcs-dv" });
    const up = await s.up();
    expect(up.errors).toEqual([]);
    expect(up.outputs.distributedDatacenter).toBe("DC1");
    const ref = MoRef.parse(String(up.outputs.distributedNetwork));
    expect(await getDistributedPortGroup(client, ref)).toMatchObject({ name: "pg-dcs-dv", vlanId: 200 });
    expect(s.state().resources.find((r) => r.name === "distributed")!.outputs.clusterName).toBeUndefined();

    // Another cluster: the standard port group moves (replaced); the distributed one is untouched.
    const moved = await s.up({ ...s.opts.config, "vmware:clusterName": "DC1_C0" });
    expect(moved.errors).toEqual([]);
    expect(moved.events.find((e) => e.key.endsWith("::standard"))).toMatchObject({ op: "replace", replaces: ["clusterName"] });
    expect(moved.events.find((e) => e.key.endsWith("::distributed"))?.op).toBe("same");
    expect(String(moved.outputs.distributedNetwork)).toBe(ref.toString());

    expect((await s.destroy()).errors).toEqual([]);
    expect(await getDistributedPortGroup(client, ref)).toBeUndefined();
  });
});
