// The suite's vCenter (simulator or real) answers the calls everything else builds on.
import { describe, expect, inject, it } from "vitest";
import { RawSoap, RawSoapFault, toMoRef } from "../support/raw-soap.js";
import { targetDispatcher } from "../support/target.js";

const target = inject("vcenter");

describe(`the suite's vCenter (${target.kind}, ${target.url})`, () => {
  it("answers RetrieveServiceContent with a vCenter of 5.5 or later", async () => {
    const soap = new RawSoap(target.url, targetDispatcher(target));
    const sc = await soap.serviceContent();
    expect(sc.about.apiType).toBe("VirtualCenter");
    const [major, minor] = String(sc.about.version).split(".").map(Number);
    expect(major! * 100 + minor!).toBeGreaterThanOrEqual(505);
    expect(toMoRef(sc.rootFolder).type).toBe("Folder");
  });

  it("accepts Login with the right password and rejects a wrong one with InvalidLogin", async () => {
    const soap = new RawSoap(target.url, targetDispatcher(target));
    const sc = await soap.serviceContent();
    const session = await soap.login(sc, target.username, target.password);
    expect(session?.userName).toContain(target.username.split("@")[0]);
    expect(soap.cookie).toMatch(/^vmware_soap_session=/);
    await soap.call("Logout", toMoRef(sc.sessionManager));

    const other = new RawSoap(target.url, targetDispatcher(target));
    const err = await other.login(sc, target.username, `${target.password}-wrong`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RawSoapFault);
    expect((err as RawSoapFault).faultName).toBe("InvalidLogin");
  });

  it("serves the datacenter and cluster the suite was told about", async () => {
    const soap = new RawSoap(target.url, targetDispatcher(target));
    const sc = await soap.serviceContent();
    await soap.login(sc, target.username, target.password);
    const dcs = await soap.retrieveAll(sc, "Datacenter", ["name"]);
    expect(dcs.map((d) => d.name)).toContain(target.datacenter ?? dcs[0]?.name);
    if (target.cluster) {
      const clusters = await soap.retrieveAll(sc, "ClusterComputeResource", ["name"]);
      expect(clusters.map((c) => c.name)).toContain(target.cluster);
    }
  });
});
