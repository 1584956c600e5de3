// OVF import on the simulator as on vCenter: ImportVApp's lease turns ready after a
// moment, a streamOptimized upload ends as the VM's flat disk, abort removes the VM.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { RawSoapFault, asArray, moRefXml, toMoRef, xmlEscape, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DatastoreHarness } from "./datastore-support.js";

let sim: Vcsim;
let ds: DatastoreHarness;
let pool: MoRef;
let work: string;
let raw: Buffer;
let stream: Buffer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "vcsim-nfc-"));
  raw = Buffer.alloc(8 << 20);
  randomBytes(1 << 20).copy(raw, 0);
  randomBytes(100_000).copy(raw, 6 << 20);
  writeFileSync(join(work, "disk.raw"), raw);
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", join(work, "disk.raw"), join(work, "so.vmdk")]);
  stream = readFileSync(join(work, "so.vmdk"));
  sim = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 300 });
  ds = await DatastoreHarness.open(sim);
  const [rp] = await ds.soap.retrieveAll(ds.sc, "ResourcePool", ["name"]);
  pool = rp!.obj as MoRef;
});
afterAll(async () => {
  await sim?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A VirtualMachineImportSpec as an OVF import of one thin 8 MiB disk on an LSI Logic controller makes it. */
function importSpec(name: string, capacityKb = 8192, rp = pool): string {
  return (
    `<spec xsi:type="VirtualMachineImportSpec"><configSpec><name>${name}</name><guestId>otherGuest64</guestId>` +
    `<files><vmPathName>[LocalDS_0]</vmPathName></files><numCPUs>1</numCPUs><memoryMB>64</memoryMB>` +
    `<deviceChange><operation>add</operation><device xsi:type="VirtualLsiLogicController"><key>1000</key>` +
    `<busNumber>0</busNumber><sharedBus>noSharing</sharedBus></device></deviceChange>` +
    `<deviceChange><operation>add</operation><fileOperation>create</fileOperation><device xsi:type="VirtualDisk"><key>-1</key>` +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName></fileName><diskMode>persistent</diskMode>` +
    `<thinProvisioned>true</thinProvisioned></backing><controllerKey>1000</controllerKey><unitNumber>0</unitNumber>` +
    `<capacityInKB>${capacityKb}</capacityInKB></device></deviceChange></configSpec>` +
    `${moRefXml("resPoolEntity", rp)}</spec>`
  );
}

async function leaseProps(lease: MoRef, h = ds): Promise<Parsed> {
  const props = await h.soap.properties(h.sc, lease, ["state", "info", "transferProgress", "initializeProgress", "error"]);
  // An enum value comes typed (xsi:type="HttpNfcLeaseState"): its text is the state.
  if (typeof props.state === "object") props.state = props.state["#text"];
  return props;
}

/** Reads the lease until it leaves `initializing` (vCenter's clients poll it the same way). */
async function whenReady(lease: MoRef, h = ds): Promise<Parsed> {
  for (let i = 0; i < 10_000; i++) {
    const props = await leaseProps(lease, h);
    if (props.state !== "initializing") return props;
  }
  throw new Error("the lease never left initializing");
}

function diskUrl(props: Parsed): string {
  const [device] = asArray(props.info.deviceUrl as Parsed | Parsed[]);
  return String(device!.url).replace("*", `${sim.info.host}:${sim.info.port}`);
}

async function put(url: string, body: Buffer): Promise<number> {
  const res = await request(url, { method: "PUT", body, headers: { "content-type": "application/x-vnd.vmware-streamVmdk" } });
  await res.body.dump();
  return res.statusCode;
}

async function vmNames(): Promise<string[]> {
  return (await ds.soap.retrieveAll(ds.sc, "VirtualMachine", ["name"])).map((v) => String(v.name));
}

describe("ImportVApp and its NFC lease", () => {
  it("is initializing, then ready with the disk's URL; the upload becomes the VM's flat disk; complete keeps the VM", async () => {
    const name = `imp-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    const first = await leaseProps(lease);
    expect(first.state).toBe("initializing");
    expect(first.info).toBeUndefined();
    expect(await put(`http://${sim.info.host}:${sim.info.port}/nfc/${lease.value}/disk-0.vmdk`, stream)).toBe(404);

    const ready = await whenReady(lease);
    expect(ready.state).toBe("ready");
    expect(Number(ready.initializeProgress)).toBe(100);
    const [device] = asArray(ready.info.deviceUrl as Parsed | Parsed[]);
    expect(device!.importKey).toBe(`/${name}/disk:0`);
    // Without --nfc-host-tls the host is "the one you reached" (vCenter), with no thumbprint of its own.
    expect(String(device!.url)).toBe(`http://*/nfc/${lease.value}/disk-0.vmdk`);
    expect(device!.sslThumbprint || undefined).toBeUndefined();
    expect(String(device!.disk)).toBe("true");
    expect(Number(ready.info.totalDiskCapacityInKB)).toBe(8192);
    expect(toMoRef(ready.info.entity).type).toBe("VirtualMachine");
    expect(await vmNames()).toContain(name);

    expect(await put(diskUrl(ready), stream)).toBe(200);
    await ds.soap.call("HttpNfcLeaseProgress", lease, "<percent>50</percent>");
    expect(Number((await leaseProps(lease)).transferProgress)).toBe(50);
    await ds.soap.call("HttpNfcLeaseComplete", lease);
    expect((await leaseProps(lease)).state).toBe("done");

    const flat = await ds.read(`${name}/${name}-flat.vmdk`);
    expect(flat.equals(raw)).toBe(true);
    const text = (await ds.read(`${name}/${name}.vmdk`)).toString();
    expect(text).toContain(`RW 16384 VMFS "${name}-flat.vmdk"`);
    expect(text).toContain('ddb.adapterType = "lsilogic"');
    expect(text).toContain('ddb.thinProvisioned = "1"');
    expect(await vmNames()).toContain(name);
    // The lease is over: its URL takes nothing more.
    expect(await put(diskUrl(ready), stream)).toBe(404);
  });

  it("abort ends the lease in error and removes the VM and its files", async () => {
    const name = `abort-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    const ready = await whenReady(lease);
    expect(await put(diskUrl(ready), stream)).toBe(200);
    expect(await ds.status(`${name}/${name}.vmdk`)).toBe(200);
    await ds.soap.call("HttpNfcLeaseAbort", lease);
    const after = await leaseProps(lease);
    expect(after.state).toBe("error");
    expect(after.error.fault["@_type"]).toBe("RequestCanceled");
    expect(await vmNames()).not.toContain(name);
    expect(await ds.status(`${name}/${name}.vmdk`)).toBe(404);
    expect(await ds.status(`${name}/${name}-flat.vmdk`)).toBe(404);
    const again = await ds.soap.call("HttpNfcLeaseComplete", lease).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RawSoapFault);
    expect((again as RawSoapFault).faultName).toBe("InvalidState");
  });

  it("refuses an upload that is not a whole streamOptimized VMDK (400) and keeps the lease ready", async () => {
    const name = `bad-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    const ready = await whenReady(lease);
    expect(await put(diskUrl(ready), raw.subarray(0, 1 << 20))).toBe(400);
    expect(await put(diskUrl(ready), stream.subarray(0, stream.length >> 1))).toBe(400);
    expect((await leaseProps(lease)).state).toBe("ready");
    expect(await put(diskUrl(ready), stream)).toBe(200);
    await ds.soap.call("HttpNfcLeaseComplete", lease);
    expect((await ds.read(`${name}/${name}-flat.vmdk`)).equals(raw)).toBe(true);
  });

  it("takes a stream that ends after its last grain with no end-of-stream marker, as qemu-img writes large ones", async () => {
    const name = `noeos-${Date.now()}`;
    let last = stream.length - 1;
    while (stream[last] === 0) last--;
    const unmarked = stream.subarray(0, Math.ceil((last + 1) / 512) * 512);
    expect(unmarked.length).toBeLessThan(stream.length);
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    const ready = await whenReady(lease);
    expect(await put(diskUrl(ready), unmarked)).toBe(200);
    await ds.soap.call("HttpNfcLeaseComplete", lease);
    expect((await ds.read(`${name}/${name}-flat.vmdk`)).equals(raw)).toBe(true);
  });

  it("a disk smaller in the spec than in the stream grows to the stream's capacity", async () => {
    const name = `grow-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name, 1024)))!);
    const ready = await whenReady(lease);
    expect(await put(diskUrl(ready), stream)).toBe(200);
    await ds.soap.call("HttpNfcLeaseComplete", lease);
    expect((await ds.read(`${name}/${name}-flat.vmdk`)).equals(raw)).toBe(true);
    expect((await ds.read(`${name}/${name}.vmdk`)).toString()).toContain(`RW 16384 VMFS`);
  });

  it("cutUpload cuts an NFC upload: the client sees a reset and the lease can still be aborted cleanly", async () => {
    const name = `cut-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    const ready = await whenReady(lease);
    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 200_000, path: "/nfc/" });
    await expect(put(diskUrl(ready), stream)).rejects.toThrow();
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
    await ds.soap.call("HttpNfcLeaseAbort", lease);
    expect(await vmNames()).not.toContain(name);
  });
});

/** A one-disk OVF descriptor whose disk is the streamOptimized file made above. */
function ovf(): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="disk.vmdk" ovf:id="file1" ovf:size="${stream.length}"/></References>
  <DiskSection><Info>Disks</Info><Disk ovf:capacity="${raw.length}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1"
    ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info>
    <VirtualHardwareSection><Info>Hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>1 CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>64 MB</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>64</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>`;
}

describe("an import from OvfManager.CreateImportSpec", () => {
  it("gives each disk a URL whose importKey is its fileItem's deviceId, and the upload lands", async () => {
    const name = `ovf-${Date.now()}`;
    const [store] = (await ds.soap.retrieveAll(ds.sc, "Datastore", ["name"])).filter((d) => d.name === "LocalDS_0");
    // The import spec goes back to ImportVApp as the server wrote it, so the raw answer is kept.
    const envelope =
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
      `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><CreateImportSpec xmlns="urn:vim25">` +
      `${moRefXml("_this", toMoRef(ds.sc.ovfManager))}<ovfDescriptor>${xmlEscape(ovf())}</ovfDescriptor>` +
      `${moRefXml("resourcePool", pool)}${moRefXml("datastore", store!.obj as MoRef)}` +
      `<cisp><locale></locale><deploymentOption></deploymentOption><entityName>${name}</entityName></cisp>` +
      `</CreateImportSpec></soapenv:Body></soapenv:Envelope>`;
    const res = await request(sim.info.url, {
      method: "POST",
      headers: { "content-type": "text/xml; charset=utf-8", soapaction: "urn:vim25/6.5", cookie: ds.cookie },
      body: envelope,
    });
    const text = await res.body.text();
    expect(res.statusCode).toBe(200);
    const spec = /<importSpec\b[\s\S]*<\/importSpec>/.exec(text)![0].replace(/^<importSpec/, "<spec").replace(/<\/importSpec>$/, "</spec>");
    const deviceId = /<fileItem>[\s\S]*?<deviceId>([^<]+)<\/deviceId>/.exec(text)![1];

    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, spec))!);
    const ready = await whenReady(lease);
    const [device] = asArray(ready.info.deviceUrl as Parsed | Parsed[]);
    expect(device!.importKey).toBe(deviceId);
    expect(await put(diskUrl(ready), stream)).toBe(200);
    await ds.soap.call("HttpNfcLeaseComplete", lease);
    expect((await ds.read(`${name}/disk-0-flat.vmdk`)).equals(raw)).toBe(true);
    expect((await ds.read(`${name}/disk-0.vmdk`)).toString()).toContain('RW 16384 VMFS "disk-0-flat.vmdk"');
  });
});

describe("a lease aborted while it is initializing", () => {
  it("never turns ready, and its VM is gone", async () => {
    const name = `early-${Date.now()}`;
    const lease = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(name)))!);
    expect((await leaseProps(lease)).state).toBe("initializing");
    await ds.soap.call("HttpNfcLeaseAbort", lease);
    expect((await leaseProps(lease)).state).toBe("error");
    expect(await vmNames()).not.toContain(name);
    // A lease made after it turns ready after it would have: by then the first one's moment has passed.
    const later = toMoRef((await ds.soap.call("ImportVApp", pool, importSpec(`${name}-later`)))!);
    expect((await whenReady(later)).state).toBe("ready");
    expect((await leaseProps(lease)).state).toBe("error");
    await ds.soap.call("HttpNfcLeaseAbort", later);
  });
});

describe("--nfc-host-tls: lease uploads go to an ESXi host of their own, trusted by the lease's sslThumbprint", () => {
  let hostSim: Vcsim;
  let hostDs: DatastoreHarness;
  let hostPool: MoRef;
  beforeAll(async () => {
    hostSim = await startVcsim({ clusters: 1, hosts: 1, nfcReadyMs: 0, nfcHostTls: true });
    hostDs = await DatastoreHarness.open(hostSim);
    const [rp] = await hostDs.soap.retrieveAll(hostDs.sc, "ResourcePool", ["name"]);
    hostPool = rp!.obj as MoRef;
  });
  afterAll(async () => {
    await hostSim?.stop();
  });

  /** The SHA-1 of the certificate a TLS server presents, colon hex, read without trusting it. */
  function peerSha1(url: string): Promise<string> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = tlsConnect({ host: u.hostname, port: Number(u.port), rejectUnauthorized: false }, () => {
        resolve(socket.getPeerCertificate().fingerprint);
        socket.destroy();
      });
      socket.once("error", reject);
    });
  }

  it("names the host's origin with its certificate's thumbprint; vCenter's origin refuses the upload; the host takes it", async () => {
    const name = `host-${Date.now()}`;
    const lease = toMoRef((await hostDs.soap.call("ImportVApp", hostPool, importSpec(name, 8192, hostPool)))!);
    const props = await whenReady(lease, hostDs);
    const [device] = asArray(props.info.deviceUrl as Parsed | Parsed[]);
    const url = String(device!.url);
    expect(new URL(url).origin).toBe(hostSim.info.nfcHostUrl);
    expect(url).toBe(`${hostSim.info.nfcHostUrl}/nfc/${lease.value}/disk-0.vmdk`);
    expect(device!.sslThumbprint).toBe(hostSim.info.nfcHostThumbprint);
    expect(await peerSha1(url)).toBe(hostSim.info.nfcHostThumbprint);

    // Not a certificate anyone's CAs sign: only the thumbprint can trust it.
    await expect(request(url, { method: "PUT", body: stream })).rejects.toThrow(/self.signed|certificate/i);
    // vCenter's own origin does not serve the lease's disk: a client must go to the host.
    expect(await put(`http://${hostSim.info.host}:${hostSim.info.port}/nfc/${lease.value}/disk-0.vmdk`, stream)).toBe(404);

    const trusting = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      const res = await request(url, { method: "POST", body: stream, dispatcher: trusting, headers: { "content-type": "application/x-vnd.vmware-streamVmdk" } });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
    } finally {
      await trusting.close();
    }
    await hostDs.soap.call("HttpNfcLeaseComplete", lease);
    expect((await hostDs.read(`${name}/${name}-flat.vmdk`)).equals(raw)).toBe(true);
  });

  it("cutUpload applies on the host's listener too", async () => {
    const name = `hostcut-${Date.now()}`;
    const lease = toMoRef((await hostDs.soap.call("ImportVApp", hostPool, importSpec(name, 8192, hostPool)))!);
    const props = await whenReady(lease, hostDs);
    const [device] = asArray(props.info.deviceUrl as Parsed | Parsed[]);
    const rule = await hostSim.control.addRule({ kind: "cutUpload", afterBytes: 200_000, path: "/nfc/" });
    const trusting = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      await expect(request(String(device!.url), { method: "POST", body: stream, dispatcher: trusting })).rejects.toThrow();
    } finally {
      await trusting.close();
    }
    expect(await hostSim.control.rule(rule.id)).toMatchObject({ fired: 1 });
    await hostDs.soap.call("HttpNfcLeaseAbort", lease);
    expect(await hostDs.status(`${name}/${name}.vmdk`)).toBe(404);
  });
});
