// The simulator's TLS, version and topology flags change what a client sees.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "undici";
import { RawSoap, asArray, toMoRef, type Parsed } from "../support/raw-soap.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, vcsimArgs, type Vcsim, type VcsimInfo } from "../vcsim/index.js";

describe("TLS", () => {
  let sim: Vcsim;
  let other: Vcsim;
  const dir = mkdtempSync(join(tmpdir(), "vcsim-tls-"));
  const caFile = join(dir, "ca.pem");

  beforeAll(async () => {
    [sim, other] = await Promise.all([startVcsim({ tls: true, caFile, hosts: 1 }), startVcsim({ tls: true, hosts: 1 })]);
  });
  afterAll(async () => {
    await Promise.all([sim?.stop(), other?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves HTTPS and writes its certificate where --ca-file says", () => {
    expect(sim.info.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
    expect(sim.info.caFile).toBe(caFile);
    expect(readFileSync(caFile, "utf8")).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(sim.info.thumbprint).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
  });

  it("verifies with the written CA file", async () => {
    const soap = new RawSoap(sim.info.url, new Agent({ connect: { ca: readFileSync(caFile) } }));
    expect((await soap.serviceContent()).about.apiType).toBe("VirtualCenter");
  });

  it("fails verification without it, and with another server's certificate", async () => {
    const plain = new RawSoap(sim.info.url, new Agent());
    await expect(plain.serviceContent()).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/) });
    const wrong = new RawSoap(sim.info.url, new Agent({ connect: { ca: readFileSync(other.info.caFile!) } }));
    await expect(wrong.serviceContent()).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/) });
  });

  it("makes a new certificate at every start", () => {
    expect(other.info.thumbprint).not.toBe(sim.info.thumbprint);
  });
});

describe("topology", () => {
  let sim: Vcsim;
  let sc: Parsed;
  let soap: RawSoap;

  beforeAll(async () => {
    sim = await startVcsim({
      clusters: 2,
      hosts: 3,
      standaloneHosts: 1,
      datastores: 1,
      clusterDatastores: 1,
      localDatastores: 1,
      uplinks: 4,
      dvPortgroups: 2,
      vms: 1000,
      powerOn: false,
      drs: false,
    });
    soap = new RawSoap(sim.info.url);
    sc = await soap.serviceContent();
    await soap.login(sc, sim.info.username, sim.info.password);
  });
  afterAll(() => sim?.stop());

  it("builds 2 clusters of 3 hosts and a standalone host", async () => {
    const clusters = await soap.retrieveAll(sc, "ClusterComputeResource", ["name", "host"]);
    expect(clusters.map((c) => c.name).sort()).toEqual(["DC0_C0", "DC0_C1"]);
    for (const c of clusters) expect(asArray(c.host.ManagedObjectReference)).toHaveLength(3);
    const hosts = await soap.retrieveAll(sc, "HostSystem", ["name"]);
    expect(hosts).toHaveLength(7);
    expect(sim.info.inventory.datacenters[0]!.standaloneHosts).toEqual(["DC0_H0"]);
  });

  it("makes 1,000 VMs, all listed when paging 100 at a time", async () => {
    const vms = await soap.retrieveAll(sc, "VirtualMachine", ["name", "runtime.powerState"], 100);
    expect(vms).toHaveLength(1000);
    expect(new Set(vms.map((v) => v.name)).size).toBe(1000);
    // An enum value comes typed (xsi:type="VirtualMachinePowerState"): read its text.
    expect(new Set(vms.map((v) => v["runtime.powerState"]["#text"]))).toEqual(new Set(["poweredOff"]));
    expect(sim.info.inventory.vms).toBe(1000);
  });

  it("mounts datastores per datacenter, per cluster and per host", async () => {
    const dss = await soap.retrieveAll(sc, "Datastore", ["name", "host", "summary.accessible"]);
    const mounts = Object.fromEntries(dss.map((d) => [d.name, asArray(d.host.DatastoreHostMount).length]));
    expect(mounts).toMatchObject({ DC0_C0_DS0: 3, DC0_C1_DS0: 3, DC0_C0_H0_local0: 1, DC0_H0_local0: 1 });
    expect(Object.keys(mounts).filter((n) => n.endsWith("_local0"))).toHaveLength(7);
    expect(mounts.LocalDS_0).toBeGreaterThanOrEqual(1);
  });

  it("turns DRS off when asked", async () => {
    const clusters = await soap.retrieveAll(sc, "ClusterComputeResource", ["configurationEx"]);
    for (const c of clusters) expect(c.configurationEx.drsConfig.enabled).toBe("false");
  });

  it("gives the distributed switch its uplinks and port groups, with every host a member", async () => {
    const [dvs] = await soap.retrieveAll(sc, "DistributedVirtualSwitch", ["name", "config", "summary.hostMember"]);
    expect(dvs!.name).toBe("DVS0");
    expect(asArray(dvs!.config.uplinkPortPolicy.uplinkPortName)).toEqual(["uplink1", "uplink2", "uplink3", "uplink4"]);
    expect(asArray(dvs!["summary.hostMember"].ManagedObjectReference)).toHaveLength(7);
    const pgs = await soap.retrieveAll(sc, "DistributedVirtualPortgroup", ["name"]);
    expect(pgs.map((p) => p.name)).toEqual(expect.arrayContaining(["DC0_DVPG0", "DC0_DVPG1"]));
  });
});

describe("defaults, DRS and version", () => {
  it("enables DRS fully automated by default and reports the simulator's 6.5", async () => {
    const sim = await startVcsim({ hosts: 1 });
    try {
      const soap = new RawSoap(sim.info.url);
      const sc = await soap.serviceContent();
      await soap.login(sc, sim.info.username, sim.info.password);
      const [cluster] = await soap.retrieveAll(sc, "ClusterComputeResource", ["configurationEx"]);
      expect(cluster!.configurationEx.drsConfig).toMatchObject({ enabled: "true", defaultVmBehavior: "fullyAutomated" });
      expect(sc.about.version).toBe("6.5.0");
    } finally {
      await sim.stop();
    }
  });

  it("reports an older vCenter when asked (--api-version)", async () => {
    const sim = await startVcsim({ hosts: 1, apiVersion: "5.1.0" });
    try {
      const sc = await new RawSoap(sim.info.url).serviceContent();
      expect(sc.about).toMatchObject({ version: "5.1.0", apiVersion: "5.1" });
      expect(sim.info.apiVersion).toBe("5.1.0");
    } finally {
      await sim.stop();
    }
  });

  it("accepts only its own credentials", async () => {
    const sim = await startVcsim({ hosts: 1, username: "admin@vsphere.local", password: "s3cret" });
    try {
      const soap = new RawSoap(sim.info.url);
      const sc = await soap.serviceContent();
      await expect(soap.login(sc, "user", "pass")).rejects.toMatchObject({ faultName: "InvalidLogin" });
      await expect(soap.login(sc, "admin@vsphere.local", "s3cret")).resolves.toMatchObject({ userName: "admin@vsphere.local" });
    } finally {
      await sim.stop();
    }
  });

  it("refuses bad flags with a message that names the flag", async () => {
    await expect(startVcsim({ vms: 6000 })).rejects.toThrow(/6000 VMs in all: at most 5000/);
    await expect(startVcsim({ clusters: -1 })).rejects.toThrow(/--clusters -1: must be 0 or more/);
  });
});

describe("npm run vcsim", () => {
  it("prints the JSON ready line first and answers SOAP at its url", async () => {
    const child = spawn(join(PROJECT_ROOT, "node_modules", ".bin", "tsx"), ["scripts/vcsim.ts", ...vcsimArgs({ clusters: 2, hosts: 3, vms: 50, tls: true })], {
      cwd: PROJECT_ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once("line", resolve);
        child.once("exit", (code) => reject(new Error(`exited ${code}`)));
      });
      const info = JSON.parse(line) as VcsimInfo;
      expect(info).toMatchObject({ tls: true, username: "user", password: "pass" });
      expect(info.inventory.datacenters[0]!.clusters).toHaveLength(2);
      const soap = new RawSoap(info.url, new Agent({ connect: { ca: readFileSync(info.caFile!) } }));
      const sc = await soap.serviceContent();
      await soap.login(sc, info.username, info.password);
      expect(toMoRef(sc.rootFolder).type).toBe("Folder");
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGINT");
      await exited;
    }
  });
});
