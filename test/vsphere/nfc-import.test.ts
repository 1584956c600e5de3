// importStreamOptimized against a private simulator whose ImportVApp and NFC lease
// behave as vCenter's (test/vcsim/nfc.go): a real streamOptimized VMDK made by
// qemu-img lands as the shadow VM's flat disk with the image's bytes; every failure
// aborts the lease and leaves no VM and no files.
import { createHash } from "node:crypto";
import { EventEmitter, once } from "node:events";
import { createReadStream } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, flatExtentOf } from "../../provider/vsphere/datastore.js";
import { TlsError } from "../../provider/vsphere/errors.js";
import { HttpChannel } from "../../provider/vsphere/http.js";
import { getCluster, getDatacenter, listVms, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { CONTROLLER_TYPES, NfcImportError, importStreamOptimized, type StreamOptimizedImport } from "../../provider/vsphere/nfc-import.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { arrayOf, dataObject, int, str } from "../../provider/vsphere/schema.js";
import { download } from "../../provider/vsphere/transfer.js";
import { ADAPTER_TYPES } from "../../provider/vsphere/vmdk.js";
import { simOptions } from "../support/clients.js";
import { ImageDir, qemuImg } from "../support/images.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { rejection } from "../support/rejection.js";
import { sha256Of } from "../support/hash.js";

let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let images: ImageDir;
let vmdk: string;
let rawSha: string;
/** Emits each method name as the client finishes a call to it. */
const calls = new EventEmitter();
const DS = "LocalDS_0";

beforeAll(async () => {
  images = await ImageDir.create();
  vmdk = await images.convertedVmdk("so.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
  await qemuImg("convert", "-f", "vmdk", "-O", "raw", vmdk, images.path("so.raw"));
  rawSha = createHash("sha256").update(await readFile(images.path("so.raw"))).digest("hex");
  sim = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 200 });
  client = await VimClient.connect(simOptions(sim, { onLog: (e) => e.event === "call" && e.method && calls.emit(e.method) }));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
});

async function importOpts(name: string, overrides: Partial<StreamOptimizedImport> = {}): Promise<StreamOptimizedImport> {
  const length = (await stat(vmdk)).size;
  return {
    datacenter: dc,
    resourcePool: cluster.resourcePool,
    datastore: DS,
    name,
    capacityBytes: 8 << 20,
    adapterType: "lsiLogic",
    stream: () => createReadStream(vmdk),
    length,
    ...overrides,
  };
}

async function vmNames(): Promise<string[]> {
  return (await listVms(client, client.serviceContent.rootFolder)).map((v) => v.name);
}

const Devices = z.object({
  "config.hardware.device": arrayOf(dataObject({ $type: str.optional(), key: int, controllerKey: int.optional() })),
});

/** The vim25 type of the controller the VM's disk is on. */
async function diskController(vm: import("../../provider/vsphere/soap/xml.js").MoRef): Promise<string | undefined> {
  const devices = (await new PropertyCollector(client).get(vm, Devices))["config.hardware.device"];
  const disk = devices.find((d) => d.$type === "VirtualDisk");
  return devices.find((d) => d.key === disk?.controllerKey)?.$type;
}

describe("importStreamOptimized", () => {
  it("imports a qemu-img streamOptimized VMDK: the flat disk has the image's bytes; release unregisters the VM and keeps the disk", async () => {
    const name = `shadow-${Date.now()}`;
    const seen: number[] = [];
    const before = client.stats.roundTrips;
    const progressBefore = client.stats.byMethod.HttpNfcLeaseProgress ?? 0;
    const imported = await importStreamOptimized(
      client,
      // No timer-driven progress here: only the quarters count.
      await importOpts(name, { progressIntervalMs: 3_600_000, onProgress: (sent, total) => seen.push(Math.floor((sent * 100) / total)) }),
    );
    const trips = client.stats.roundTrips - before;

    expect(imported.disk.toString()).toBe(`[${DS}] ${name}/${name}.vmdk`);
    expect(imported.vmFolder.toString()).toBe(`[${DS}] ${name}`);
    expect(imported.transfer.bytes).toBe((await stat(vmdk)).size);
    expect(imported.transfer.sha256).toBe(createHash("sha256").update(await readFile(vmdk)).digest("hex"));
    // One HttpNfcLeaseProgress per quarter the upload crossed (25, 50, 75, 100).
    const quarters = new Set(seen.map((p) => Math.floor(p / 25)).filter((q) => q > 0)).size;
    expect(quarters).toBe(4);
    expect((client.stats.byMethod.HttpNfcLeaseProgress ?? 0) - progressBefore).toBe(quarters);
    // ImportVApp; the lease wait: CreatePropertyCollector, CreateFilter, WaitForUpdatesEx (initializing, ready),
    // DestroyPropertyCollector; the VM's files; the progress calls; HttpNfcLeaseComplete (the upload is HTTP).
    expect(trips).toBeLessThanOrEqual(8 + quarters);

    const flat = await download(client, dc, flatExtentOf(imported.disk));
    expect((await sha256Of(flat.stream)).sha256).toBe(rawSha);
    const descriptor = await download(client, dc, imported.disk);
    const text = Buffer.concat(await descriptor.stream.toArray()).toString();
    expect(text).toContain('ddb.adapterType = "lsilogic"');
    expect(text).toContain('ddb.thinProvisioned = "1"');
    expect(await vmNames()).toContain(name);

    await imported.release();
    expect(await vmNames()).not.toContain(name);
    expect(await fileExists(client, dc, imported.disk)).toBe(true);
    // Released twice (a caller's finally after its own): no second UnregisterVM.
    await imported.release({ deleteFolder: true });
    expect(await fileExists(client, dc, imported.vmFolder)).toBe(false);
  });

  it("puts the disk on the controller of each adapter type", async () => {
    for (const adapterType of ADAPTER_TYPES) {
      const name = `ctl-${adapterType}-${Date.now()}`;
      const imported = await importStreamOptimized(client, await importOpts(name, { adapterType }));
      try {
        expect(await diskController(imported.vm)).toBe(CONTROLLER_TYPES[adapterType]);
      } finally {
        await imported.release({ deleteFolder: true });
      }
      expect(await vmNames()).not.toContain(name);
      expect(await fileExists(client, dc, imported.vmFolder)).toBe(false);
    }
  });

  it("tells the lease how far it is on a timer while the bytes stall, not only at quarters", async () => {
    const name = `slow-${Date.now()}`;
    const whole = await readFile(vmdk);
    const tenth = Math.floor(whole.length / 10);
    const before = client.stats.byMethod.HttpNfcLeaseProgress ?? 0;
    let duringStall = 0;
    async function* stalling(): AsyncGenerator<Buffer> {
      yield whole.subarray(0, tenth);
      // Below 25 %: only the timer can send a progress call. Wait for that call.
      await once(calls, "HttpNfcLeaseProgress");
      duringStall = (client.stats.byMethod.HttpNfcLeaseProgress ?? 0) - before;
      yield whole.subarray(tenth);
    }
    const imported = await importStreamOptimized(client, await importOpts(name, { progressIntervalMs: 50, stream: stalling() }));
    expect(duringStall).toBeGreaterThanOrEqual(1);
    await imported.release({ deleteFolder: true });
  });

  it("a refused progress call does not stop the upload", async () => {
    const name = `noprogress-${Date.now()}`;
    const rule = await sim.control.addRule({ kind: "fault", method: "HttpNfcLeaseProgress", fault: "InvalidState", times: -1 });
    try {
      const imported = await importStreamOptimized(client, await importOpts(name));
      expect((await sim.control.rule(rule.id)).fired).toBeGreaterThanOrEqual(1);
      expect((await sha256Of((await download(client, dc, flatExtentOf(imported.disk))).stream)).sha256).toBe(rawSha);
      await imported.release({ deleteFolder: true });
    } finally {
      await sim.control.clearRules();
    }
  });

  it("makes a thick disk when asked", async () => {
    const name = `thick-${Date.now()}`;
    const imported = await importStreamOptimized(client, await importOpts(name, { provisioning: "thick" }));
    try {
      const text = Buffer.concat(await (await download(client, dc, imported.disk)).stream.toArray()).toString();
      expect(text).not.toContain("ddb.thinProvisioned");
      expect((await sha256Of((await download(client, dc, flatExtentOf(imported.disk))).stream)).sha256).toBe(rawSha);
    } finally {
      await imported.release({ deleteFolder: true });
    }
  });

  it("takes the datastore as a reference too", async () => {
    const [ref] = (await new PropertyCollector(client).getMany(cluster.datastores, z.object({ name: str }))).filter((d) => d.props.name === DS);
    const name = `byref-${Date.now()}`;
    const imported = await importStreamOptimized(client, await importOpts(name, { datastore: ref!.obj }));
    expect(imported.disk.datastore).toBe(DS);
    await imported.release({ deleteFolder: true });
  });

  it("an upload cut on the way aborts the lease and leaves no VM and no files", async () => {
    const name = `cut-${Date.now()}`;
    const aborts = client.stats.byMethod.HttpNfcLeaseAbort ?? 0;
    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 300_000, path: "/nfc/" });
    const err = await rejection(importStreamOptimized(client, await importOpts(name)));
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
    expect(err).toBeInstanceOf(NfcImportError);
    expect((err as NfcImportError).stage).toBe("upload");
    expect((err as NfcImportError).leftover).toEqual([]);
    expect(err.message).toContain(name);
    expect((client.stats.byMethod.HttpNfcLeaseAbort ?? 0) - aborts).toBe(1);
    expect(await vmNames()).not.toContain(name);
    expect(await fileExists(client, dc, new DatastorePath(DS, name))).toBe(false);
  });

  it("a lease that fails at complete is aborted: a clear error, no VM, no files", async () => {
    const name = `fail-${Date.now()}`;
    await sim.control.addRule({ kind: "fault", method: "HttpNfcLeaseComplete", fault: "SystemError", message: "host lost its datastore" });
    const err = await rejection(importStreamOptimized(client, await importOpts(name)));
    expect(err).toBeInstanceOf(NfcImportError);
    expect((err as NfcImportError).stage).toBe("complete");
    expect(err.message).toMatch(/SystemError/);
    expect(await vmNames()).not.toContain(name);
    expect(await fileExists(client, dc, new DatastorePath(DS, name))).toBe(false);
  });

  it("when the abort itself fails (the VM stays), the shadow VM and its folder are destroyed all the same", async () => {
    const name = `noabort-${Date.now()}`;
    await sim.control.addRule({ kind: "cutUpload", afterBytes: 300_000, path: "/nfc/" });
    await sim.control.addRule({ kind: "fault", method: "HttpNfcLeaseAbort", fault: "SystemError", message: "lost" });
    const destroys = client.stats.byMethod.Destroy_Task ?? 0;
    const err = await rejection(importStreamOptimized(client, await importOpts(name)));
    expect(err).toBeInstanceOf(NfcImportError);
    expect((err as NfcImportError).leftover).toEqual([]);
    expect((client.stats.byMethod.Destroy_Task ?? 0) - destroys).toBe(1);
    expect(await vmNames()).not.toContain(name);
    expect(await fileExists(client, dc, new DatastorePath(DS, name))).toBe(false);
  });

  it("a lease still initializing when the wait gives up is aborted: a clear error, no VM, no files", async () => {
    // A simulator whose leases take a minute to be ready; the import waits one second.
    const slow = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 60_000 });
    const slowClient = await VimClient.connect(simOptions(slow));
    try {
      const slowDc = await getDatacenter(slowClient);
      const slowCluster = await getCluster(slowClient, slowDc, slow.info.inventory.datacenters[0]!.clusters[0]!.name);
      const name = `slowlease-${Date.now()}`;
      const err = await rejection(
        importStreamOptimized(slowClient, await importOpts(name, { datacenter: slowDc, resourcePool: slowCluster.resourcePool, readyTimeoutMs: 1000 })),
      );
      expect(err).toBeInstanceOf(NfcImportError);
      expect((err as NfcImportError).stage).toBe("lease");
      expect(err.message).toMatch(/still initializing after 1\.0 s/);
      expect(slowClient.stats.byMethod.HttpNfcLeaseAbort).toBe(1);
      expect((await listVms(slowClient, slowClient.serviceContent.rootFolder)).map((v) => v.name)).not.toContain(name);
      expect(await fileExists(slowClient, slowDc, new DatastorePath(DS, name))).toBe(false);
    } finally {
      await slowClient.close();
      await slow.stop();
    }
  });

  it("a source shorter than announced fails the upload and cleans up", async () => {
    const name = `short-${Date.now()}`;
    const length = (await stat(vmdk)).size;
    const err = await rejection(importStreamOptimized(client, await importOpts(name, { length: length + 512 })));
    expect(err).toBeInstanceOf(NfcImportError);
    expect((err as NfcImportError).stage).toBe("upload");
    expect(await vmNames()).not.toContain(name);
    expect(await fileExists(client, dc, new DatastorePath(DS, name))).toBe(false);
  });

  it("an ImportVApp refused (DuplicateName: a VM of that name exists) touches nothing of the other VM", async () => {
    const name = `dup-${Date.now()}`;
    const first = await importStreamOptimized(client, await importOpts(name));
    try {
      // vCenter refuses a second VM of one name in a folder; the simulator does not, so the fault is injected.
      await sim.control.addRule({ kind: "fault", method: "ImportVApp", fault: "DuplicateName", fields: { name } });
      const err = await rejection(importStreamOptimized(client, await importOpts(name)));
      expect(err).toBeInstanceOf(NfcImportError);
      expect((err as NfcImportError).stage).toBe("import");
      expect(err.message).toMatch(/DuplicateName/);
      expect(await vmNames()).toContain(name);
      expect(await fileExists(client, dc, first.disk)).toBe(true);
    } finally {
      await first.release({ deleteFolder: true });
    }
  });
});

// On vCenter a lease's device URL names the ESXi host that takes the bytes, and that
// host's certificate is its own: vCenter vouches for it by its SHA-1 in the lease
// (sslThumbprint). The simulator's --nfc-host-tls serves the uploads so, on a second
// listener with a certificate no CA here signs, and refuses them on vCenter's origin.
describe("importStreamOptimized to a lease host with a certificate of its own", () => {
  /** A simulator with TLS, a client trusting vCenter by its CA file only, and where imports go. */
  async function tlsTarget(options: Parameters<typeof startVcsim>[0], overrides: Partial<Parameters<typeof simOptions>[1]> = {}) {
    const s = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 0, tls: true, ...options });
    const c = await VimClient.connect(simOptions(s, overrides));
    const d = await getDatacenter(c);
    const cl = await getCluster(c, d, s.info.inventory.datacenters[0]!.clusters[0]!.name);
    return {
      sim: s,
      client: c,
      dc: d,
      opts: (name: string) => importOpts(name, { datacenter: d, resourcePool: cl.resourcePool }),
      names: async () => (await listVms(c, c.serviceContent.rootFolder)).map((v) => v.name),
      stop: async () => {
        await c.close();
        await s.stop();
      },
    };
  }
  type Target = Awaited<ReturnType<typeof tlsTarget>>;
  let host: Target;
  beforeAll(async () => {
    host = await tlsTarget({ nfcHostTls: true });
  });
  afterAll(async () => {
    await host?.stop();
  });

  /** A channel of its own to the host simulator's vCenter (nothing logged in: the NFC host needs no cookie). */
  function channel(tls: { caFile?: string; insecure?: boolean }): HttpChannel {
    return new HttpChannel({
      host: host.sim.info.host,
      port: host.sim.info.port,
      protocol: "https",
      requestTimeoutMs: 10_000,
      apiRetryCount: 0,
      retryBaseDelayMs: 1,
      retryMaxDelayMs: 2,
      ...tls,
    });
  }
  const hostPath = "/nfc/no-such-lease/disk-0.vmdk";
  const WRONG = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33";

  it("uploads to the host the lease names, trusted by the lease's sslThumbprint (vCenter's CA alone does not sign it)", async () => {
    expect(host.sim.info.nfcHostUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(host.sim.info.nfcHostUrl).not.toBe(host.client.http.origin);
    expect(host.sim.info.nfcHostThumbprint).not.toBe(host.sim.info.thumbprint);
    const name = `esx-${Date.now()}`;
    const uploads = (await host.sim.control.stats()).uploads;
    const imported = await importStreamOptimized(host.client, await host.opts(name));
    try {
      expect((await host.sim.control.stats()).uploads - uploads).toBe(1);
      expect(imported.transfer.bytes).toBe((await stat(vmdk)).size);
      expect((await sha256Of((await download(host.client, host.dc, flatExtentOf(imported.disk))).stream)).sha256).toBe(rawSha);
    } finally {
      await imported.release({ deleteFolder: true });
    }
    expect(await host.names()).not.toContain(name);
  });

  it("the channel: another host is not trusted by vCenter's policy (not even insecure), but by the thumbprint it is given or a CA that signs it", async () => {
    const origin = host.sim.info.nfcHostUrl!;
    const address = new URL(origin).host;
    const insecure = channel({ insecure: true });
    try {
      const untrusted = await rejection(insecure.request({ method: "GET", origin, path: hostPath }));
      expect(untrusted).toBeInstanceOf(TlsError);
      expect((untrusted as TlsError).code).toBe("TlsVerificationFailed");
      expect(untrusted.message).toContain(address);
      expect(untrusted.message).toContain(host.sim.info.nfcHostThumbprint!);
      expect(untrusted.message).toMatch(/no thumbprint/);

      insecure.trustOrigin(origin, { thumbprint: host.sim.info.nfcHostThumbprint, label: "the test host" });
      // Through TLS: the host's own answer (no such lease).
      expect(await rejection(insecure.request({ method: "GET", origin, path: hostPath }))).toMatchObject({ status: 404 });

      insecure.trustOrigin(origin, { thumbprint: WRONG, label: "the test host" });
      const wrong = await rejection(insecure.request({ method: "GET", origin, path: hostPath }));
      expect(wrong).toBeInstanceOf(TlsError);
      expect((wrong as TlsError).code).toBe("ThumbprintMismatch");
      expect(wrong.message).toContain(`the test host ${address}`);
      expect(wrong.message).toContain(WRONG);
      expect(wrong.message).toContain(host.sim.info.nfcHostThumbprint!);

      // vCenter's own origin, however spelled, keeps vCenter's policy: a thumbprint given for it changes nothing.
      insecure.trustOrigin(`https://${host.sim.info.host}:${host.sim.info.port}/`, { thumbprint: WRONG });
      expect(await rejection(insecure.request({ method: "GET", path: "/no-such-page" }))).not.toBeInstanceOf(TlsError);
    } finally {
      await insecure.close();
    }

    // A CA file that signs the host's certificate trusts it without any thumbprint.
    const pem = images.path("nfc-host-ca.pem");
    await writeFile(pem, await peerCertificatePem(origin));
    const byCa = channel({ caFile: pem });
    try {
      expect(await rejection(byCa.request({ method: "GET", origin, path: hostPath }))).toMatchObject({ status: 404 });
    } finally {
      await byCa.close();
    }
  });

  it("a lease whose thumbprint is not the host's fails the upload with a TlsError: the lease is aborted, nothing is left", async () => {
    const wrong = await tlsTarget({ nfcHostTls: true, nfcHostThumbprint: WRONG });
    try {
      const name = `wrongtp-${Date.now()}`;
      const err = await rejection(importStreamOptimized(wrong.client, await wrong.opts(name)));
      expect(err).toBeInstanceOf(NfcImportError);
      expect((err as NfcImportError).stage).toBe("upload");
      expect((err as NfcImportError).leftover).toEqual([]);
      const cause = (err as NfcImportError).cause;
      expect(cause).toBeInstanceOf(TlsError);
      expect((cause as TlsError).code).toBe("ThumbprintMismatch");
      expect(err.message).toContain(new URL(wrong.sim.info.nfcHostUrl!).host);
      expect(err.message).toContain(WRONG);
      expect(wrong.client.stats.byMethod.HttpNfcLeaseAbort).toBe(1);
      expect((await wrong.sim.control.stats()).uploads).toBe(0);
      expect(await wrong.names()).not.toContain(name);
      expect(await fileExists(wrong.client, wrong.dc, new DatastorePath(DS, name))).toBe(false);
    } finally {
      await wrong.stop();
    }
  });

  it('a lease URL on "*" is vCenter\'s origin, under vCenter\'s TLS policy (here a pinned thumbprint and no CA file)', async () => {
    const star = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 0, tls: true });
    try {
      const pinned = simOptions(star, { thumbprint: star.info.thumbprint });
      delete pinned.caFile;
      const c = await VimClient.connect(pinned);
      try {
        const d = await getDatacenter(c);
        const cl = await getCluster(c, d, star.info.inventory.datacenters[0]!.clusters[0]!.name);
        const imported = await importStreamOptimized(c, await importOpts(`star-${Date.now()}`, { datacenter: d, resourcePool: cl.resourcePool }));
        // Only vCenter's policy trusts this certificate: taken for another host, it would be checked against the system's CAs and refused.
        expect((await star.control.stats()).uploads).toBe(1);
        expect((await sha256Of((await download(c, d, flatExtentOf(imported.disk))).stream)).sha256).toBe(rawSha);
        await imported.release({ deleteFolder: true });
      } finally {
        await c.close();
      }
    } finally {
      await star.stop();
    }
  });
});

/** The PEM of the certificate a TLS server presents, read without trusting it. */
function peerCertificatePem(origin: string): Promise<string> {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
      const der = socket.getPeerCertificate().raw;
      socket.destroy();
      resolve(`-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`);
    });
    socket.once("error", reject);
  });
}
