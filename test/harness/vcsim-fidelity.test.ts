// Where govmomi's simulator differs from vCenter, the harness behaves as vCenter does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawSoap, RawSoapFault, asArray, moRefXml, toMoRef, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let sc: Parsed;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, vms: 25 });
  sc = await new RawSoap(sim.info.url).serviceContent();
});
afterAll(() => sim?.stop());

async function login(): Promise<RawSoap> {
  const soap = new RawSoap(sim.info.url);
  await soap.login(sc, sim.info.username, sim.info.password);
  return soap;
}

async function fault(p: Promise<unknown>): Promise<RawSoapFault> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RawSoapFault);
  return err as RawSoapFault;
}

describe("paging tokens", () => {
  const pc = (): MoRef => toMoRef(sc.propertyCollector);

  /** The first page of every VM's name, `maxObjects` as written by `options`. */
  async function firstPage(soap: RawSoap, options = "<options><maxObjects>10</maxObjects></options>"): Promise<Parsed> {
    const view = await soap.call(
      "CreateContainerView",
      toMoRef(sc.viewManager),
      `${moRefXml("container", toMoRef(sc.rootFolder))}<type>VirtualMachine</type><recursive>true</recursive>`,
    );
    const spec =
      `<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet></propSet>` +
      `<objectSet>${moRefXml("obj", toMoRef(view!))}<skip>true</skip>` +
      `<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>` +
      `</objectSet></specSet>`;
    return (await soap.call("RetrievePropertiesEx", pc(), spec + options))!;
  }

  const next = (soap: RawSoap, token: string) => soap.call("ContinueRetrievePropertiesEx", pc(), `<token>${token}</token>`);

  it("reads maxObjects from the decoded request, however the XML writes it", async () => {
    const soap = await login();
    const page = await firstPage(soap, `<options><v:maxObjects xmlns:v="urn:vim25"> 10 </v:maxObjects></options>`);
    expect(asArray(page.objects)).toHaveLength(10);
    expect(page.token).toBeTruthy();
  });

  it("continues a token only in the session that made it", async () => {
    const a = await login();
    const b = await login();
    const page = await firstPage(a);
    const err = await fault(next(b, String(page.token)));
    expect(err.faultName).toBe("InvalidArgument");
    expect(err.detail.invalidProperty).toBe("token");
    // The owner still can: the other session's attempt consumed nothing.
    const second = await next(a, String(page.token));
    expect(asArray(second!.objects)).toHaveLength(10);
    const err2 = await fault(b.call("CancelRetrievePropertiesEx", pc(), `<token>${String(page.token)}</token>`));
    expect(err2.detail.invalidProperty).toBe("token");
  });

  it("kills a session's tokens when it logs out: a new login cannot continue them", async () => {
    const soap = await login();
    const page = await firstPage(soap);
    await soap.call("Logout", toMoRef(sc.sessionManager));
    await soap.login(sc, sim.info.username, sim.info.password);
    const err = await fault(next(soap, String(page.token)));
    expect(err.faultName).toBe("InvalidArgument");
    expect(err.detail.invalidProperty).toBe("token");
  });

  it("answers NotAuthenticated first when the caller's session expired", async () => {
    const soap = await login();
    const page = await firstPage(soap);
    await sim.control.expireSessions();
    expect((await fault(next(soap, String(page.token)))).faultName).toBe("NotAuthenticated");
    expect((await fault(new RawSoap(sim.info.url).call("RetrievePropertiesEx", pc(), "<specSet/>"))).faultName).toBe(
      "NotAuthenticated",
    );
  });
});
