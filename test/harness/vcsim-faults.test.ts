// Every kind of injected fault fires, does what it says, and is counted.
// A private simulator per file: faults must not leak into other suites.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { RawSoap, RawSoapFault, toMoRef, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let sc: Parsed;

/** A fresh logged-in client on the private simulator. */
async function client(): Promise<RawSoap> {
  const soap = new RawSoap(sim.info.url, new Agent({ keepAliveTimeout: 10 }));
  await soap.login(sc, sim.info.username, sim.info.password);
  return soap;
}

const serviceInstance: MoRef = { type: "ServiceInstance", value: "ServiceInstance" };

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, vms: 3 });
  sc = await new RawSoap(sim.info.url).serviceContent();
});
afterAll(() => sim?.stop());
afterEach(() => sim.control.clearRules());

describe("fault injection", () => {
  it("delay: holds the named method back by at least the given time", async () => {
    const soap = await client();
    const rule = await sim.control.addRule({ kind: "delay", method: "CurrentTime", ms: 300 });
    const started = performance.now();
    await soap.call("CurrentTime", serviceInstance);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    await soap.call("RetrieveServiceContent", serviceInstance); // another method: not counted
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 1, fired: 1 });
  });

  it("fault: fails exactly the nth call of the method with the named vim fault and its fields", async () => {
    const soap = await client();
    const rule = await sim.control.addRule({
      kind: "fault",
      method: "CurrentTime",
      nth: 2,
      fault: "InvalidArgument",
      message: "bad spec",
      fields: { invalidProperty: "spec.name" },
    });
    await expect(soap.call("CurrentTime", serviceInstance)).resolves.toBeDefined();
    const err = (await soap.call("CurrentTime", serviceInstance).catch((e: unknown) => e)) as RawSoapFault;
    expect(err).toBeInstanceOf(RawSoapFault);
    expect(err.faultName).toBe("InvalidArgument");
    expect(err.message).toContain("bad spec");
    expect(err.detail.invalidProperty).toBe("spec.name");
    expect(err.status).toBe(500);
    await expect(soap.call("CurrentTime", serviceInstance)).resolves.toBeDefined();
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 3, fired: 1 });
  });

  it("fault: refuses an unknown fault name with a clear error", async () => {
    await expect(sim.control.addRule({ kind: "fault", fault: "NoSuchFault" })).rejects.toThrow(/NoSuchFault.*not a vim25 type/);
  });

  it("reset: drops the connection before the server acts, for the given number of times", async () => {
    const soap = await client();
    const rule = await sim.control.addRule({ kind: "reset", method: "CurrentTime", times: 2 });
    for (let i = 0; i < 2; i++) {
      const err = (await soap.call("CurrentTime", serviceInstance).catch((e: unknown) => e)) as Error & { code?: string };
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(RawSoapFault);
      expect(`${err.code} ${err.message}`).toMatch(/ECONNRESET|UND_ERR_SOCKET|other side closed|socket/i);
    }
    await expect(soap.call("CurrentTime", serviceInstance)).resolves.toBeDefined();
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 3, fired: 2 });
  });

  it("reset after: the server acts on the call, but the client never hears back", async () => {
    const soap = await client();
    const root = toMoRef(sc.rootFolder);
    const name = `reset-after-${Date.now()}`;
    const rule = await sim.control.addRule({ kind: "reset", method: "CreateFolder", phase: "after" });
    const err = await soap.call("CreateFolder", root, `<name>${name}</name>`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(RawSoapFault);
    // The folder exists: a blind replay would now fail with DuplicateName.
    const again = (await soap.call("CreateFolder", root, `<name>${name}</name>`).catch((e: unknown) => e)) as RawSoapFault;
    expect(again.faultName).toBe("DuplicateName");
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
  });

  it("httpStatus: answers with a bare 503", async () => {
    const soap = await client();
    const rule = await sim.control.addRule({ kind: "httpStatus", status: 503 });
    const err = (await soap.call("CurrentTime", serviceInstance).catch((e: unknown) => e)) as RawSoapFault;
    expect(err.faultName).toBe("HTTP503");
    expect(err.status).toBe(503);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
  });

  it("expire sessions on demand: the next call gets NotAuthenticated, a new Login works", async () => {
    const soap = await client();
    await soap.call("CurrentTime", serviceInstance);
    expect(await sim.control.expireSessions()).toBeGreaterThanOrEqual(1);
    const err = (await soap.call("CurrentTime", serviceInstance).catch((e: unknown) => e)) as RawSoapFault;
    expect(err.faultName).toBe("NotAuthenticated");
    await soap.login(sc, sim.info.username, sim.info.password);
    await expect(soap.call("CurrentTime", serviceInstance)).resolves.toBeDefined();
    expect((await sim.control.stats()).expiredSessions).toBeGreaterThanOrEqual(1);
  });

  it("expireSessions rule: sessions end at the nth call, in the middle of a sequence", async () => {
    const soap = await client();
    const rule = await sim.control.addRule({ kind: "expireSessions", method: "CurrentTime", nth: 3 });
    await soap.call("CurrentTime", serviceInstance);
    await soap.call("CurrentTime", serviceInstance);
    const err = (await soap.call("CurrentTime", serviceInstance).catch((e: unknown) => e)) as RawSoapFault;
    expect(err.faultName).toBe("NotAuthenticated");
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 3, fired: 1 });
  });

  it("taskError: the task of the method ends in the named fault and the method is not run", async () => {
    const soap = await client();
    const root = toMoRef(sc.rootFolder);
    const before = await soap.properties(sc, root, ["name"]);
    const rule = await sim.control.addRule({
      kind: "taskError",
      method: "Rename_Task",
      fault: "DuplicateName",
      message: "name taken",
      fields: { name: "x" },
    });
    const task = await soap.call("Rename_Task", root, `<newName>renamed-${Date.now()}</newName>`);
    const taskRef = toMoRef(task!);
    expect(taskRef.type).toBe("Task");
    const info = (await soap.properties(sc, taskRef, ["info"])).info as Parsed;
    expect(info.state).toBe("error");
    expect(info.error.fault["@_type"]).toBe("DuplicateName");
    expect(info.error.localizedMessage).toBe("name taken");
    expect((await soap.properties(sc, root, ["name"])).name).toBe(before.name);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
  });

  it("cutUpload: a datastore upload is cut after N bytes; the client sees a reset and a partial file is left", async () => {
    const soap = await client();
    const dc = sim.info.inventory.datacenters[0]!.name;
    const url = (name: string) =>
      `${sim.info.url.replace(/\/sdk$/, "")}/folder/${name}?dcPath=${encodeURIComponent(dc)}&dsName=LocalDS_0`;
    const payload = Buffer.alloc(1 << 20, 7);
    const headers = { cookie: soap.cookie!, "content-type": "application/octet-stream" };

    const ok = await request(url("whole.bin"), { method: "PUT", body: payload, headers });
    await ok.body.dump();
    expect(ok.statusCode).toBe(200);

    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 65536 });
    const err = await request(url("cut.bin"), { method: "PUT", body: payload, headers }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);

    const whole = await request(url("whole.bin"), { headers });
    expect((await whole.body.arrayBuffer()).byteLength).toBe(payload.length);
    const partial = await request(url("cut.bin"), { headers });
    expect((await partial.body.arrayBuffer()).byteLength).toBe(65536);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
    expect((await sim.control.stats()).uploads).toBeGreaterThanOrEqual(2);
  });

  it("counts every SOAP call by method, and resets the counters on request", async () => {
    await sim.control.resetStats();
    const soap = await client();
    await soap.call("CurrentTime", serviceInstance);
    await soap.call("CurrentTime", serviceInstance);
    const stats = await sim.control.stats();
    expect(stats.methods.CurrentTime).toBe(2);
    expect(stats.methods.Login).toBe(1);
    expect(stats.soapRequests).toBe(3);
  });

  it("args: a rule fires only for calls whose decoded arguments match, a moref by its value", async () => {
    const soap = await client();
    const root = toMoRef(sc.rootFolder);
    const [dc] = await soap.retrieveAll(sc, "Datacenter", ["vmFolder"]);
    const vmFolder = toMoRef(dc!.vmFolder);
    const name = `args-${Date.now()}`;
    const rule = await sim.control.addRule({
      kind: "fault",
      method: "CreateFolder",
      fault: "DuplicateName",
      times: -1,
      args: { _this: vmFolder.value, name },
    });
    // Same method, another name or another parent: not matched, not even seen.
    await soap.call("CreateFolder", vmFolder, `<name>${name}-other</name>`);
    await soap.call("CreateFolder", root, `<name>${name}</name>`);
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 0, fired: 0 });
    // The matching call, however its XML is written (prefixed element, other whitespace).
    const err = (await soap
      .call("CreateFolder", vmFolder, `\n  <v:name xmlns:v="urn:vim25">${name}</v:name>\n`)
      .catch((e: unknown) => e)) as RawSoapFault;
    expect(err).toBeInstanceOf(RawSoapFault);
    expect(err.faultName).toBe("DuplicateName");
    expect(await sim.control.rule(rule.id)).toMatchObject({ seen: 1, fired: 1 });
  });

  it("args: nested paths, typed values and arrays (any element) are resolved in the decoded request", async () => {
    const soap = await client();
    const [host] = await soap.retrieveAll(sc, "HostSystem", ["configManager.networkSystem"]);
    const ns = toMoRef(host!["configManager.networkSystem"]);
    const pg = (name: string, vlan: number) =>
      `<portgrp><name>${name}</name><vlanId>${vlan}</vlanId><vswitchName>vSwitch0</vswitchName><policy/></portgrp>`;
    const name = `pg-args-${Date.now()}`;
    const byVlan = await sim.control.addRule({
      kind: "fault",
      method: "AddPortGroup",
      fault: "InvalidArgument",
      fields: { invalidProperty: "portgrp.vlanId" },
      args: { "portgrp.name": name, "portgrp.vlanId": "42" },
    });
    await soap.call("AddPortGroup", ns, pg(`${name}-a`, 42)); // other name
    await soap.call("AddPortGroup", ns, pg(name, 41)); // other VLAN
    expect(await sim.control.rule(byVlan.id)).toMatchObject({ seen: 0 });
    await soap.call("RemovePortGroup", ns, `<pgName>${name}</pgName>`);
    const err = (await soap.call("AddPortGroup", ns, pg(name, 42)).catch((e: unknown) => e)) as RawSoapFault;
    expect(err.faultName).toBe("InvalidArgument");
    expect(await sim.control.rule(byVlan.id)).toMatchObject({ seen: 1, fired: 1 });

    const byType = await sim.control.addRule({
      kind: "delay",
      method: "RetrievePropertiesEx",
      ms: 1,
      times: -1,
      args: { "specSet.propSet.type": "Datacenter" },
    });
    await soap.retrieveAll(sc, "HostSystem", ["name"]);
    expect(await sim.control.rule(byType.id)).toMatchObject({ seen: 0 });
    await soap.retrieveAll(sc, "Datacenter", ["name"]);
    expect(await sim.control.rule(byType.id)).toMatchObject({ seen: 1 });
  });

  it("args: refuses a malformed path", async () => {
    await expect(sim.control.addRule({ kind: "fault", fault: "RuntimeFault", args: { "portgrp..name": "x" } })).rejects.toThrow(
      /portgrp\.\.name.*dotted path/,
    );
  });

  it("brings Network.vm up to date for any read of it: by traversal, with all=true, or by path", async () => {
    const soap = await client();
    const vms = (await soap.retrieveAll(sc, "VirtualMachine", ["name"])).map((v) => v.obj as MoRef);
    expect(vms.length).toBeGreaterThanOrEqual(3);
    const net = (await soap.retrieveAll(sc, "Network", ["name"])).find((n) => n.name === "VM Network")!;
    const netRef = net.obj as MoRef;
    // The simulator records a new NIC's network on the VM only; vCenter lists the VM on the network too.
    const addNic = (vm: MoRef) =>
      soap.call(
        "ReconfigVM_Task",
        vm,
        `<spec><deviceChange><operation>add</operation><device xsi:type="VirtualE1000"><key>-1</key>` +
          `<backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName>` +
          `<network type="Network">${netRef.value}</network></backing></device></deviceChange></spec>`,
      );
    const retrieve = (propSet: string, selectSet = "") =>
      soap.call(
        "RetrievePropertiesEx",
        toMoRef(sc.propertyCollector),
        `<specSet><propSet>${propSet}</propSet><objectSet><obj type="Network">${netRef.value}</obj>` +
          `<skip>${selectSet ? "true" : "false"}</skip>${selectSet}</objectSet></specSet><options/>`,
      );
    const vmProperty = (result: Parsed | undefined): string[] => {
      const props = [result!.objects.propSet].flat() as Parsed[];
      const refs = props.find((p) => p.name === "vm")?.val.ManagedObjectReference as Parsed | Parsed[] | undefined;
      return [refs ?? []].flat().map((r) => String(r["#text"]));
    };

    // Each read comes right after a change, so each must bring the list up to date itself.
    await addNic(vms[0]!);
    const traversed = await retrieve(
      "<type>VirtualMachine</type><pathSet>name</pathSet>",
      `<selectSet xsi:type="TraversalSpec"><name>vms</name><type>Network</type><path>vm</path><skip>false</skip></selectSet>`,
    );
    expect([traversed?.objects ?? []].flat().map((o: Parsed) => String(o.obj["#text"]))).toContain(vms[0]!.value);
    await addNic(vms[1]!);
    expect(vmProperty(await retrieve("<type>Network</type><all>true</all>"))).toContain(vms[1]!.value);
    await addNic(vms[2]!);
    expect(vmProperty(await retrieve("<type>Network</type><pathSet>name</pathSet><pathSet>vm</pathSet>"))).toContain(vms[2]!.value);
  });

  it("takes rules at start (--fault) and lists them with their counters", async () => {
    const other = await startVcsim({
      clusters: 0,
      hosts: 0,
      faults: [{ kind: "fault", method: "RetrieveServiceContent", fault: "RuntimeFault", times: -1 }],
    });
    try {
      const err = (await new RawSoap(other.info.url).serviceContent().catch((e: unknown) => e)) as RawSoapFault;
      expect(err.faultName).toBe("RuntimeFault");
      const [rule] = await other.control.rules();
      expect(rule).toMatchObject({ kind: "fault", fired: 1, times: -1 });
    } finally {
      await other.stop();
    }
  });
});
