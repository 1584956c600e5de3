// The simulator's counters and session list are exact: other suites prove round-trip
// counts, connection reuse and "no session left behind" with them.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "undici";
import { RawSoap, toMoRef, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const serviceInstance: MoRef = { type: "ServiceInstance", value: "ServiceInstance" };

let sim: Vcsim;
let sc: Parsed;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  sc = await new RawSoap(sim.info.url).serviceContent();
});
afterAll(() => sim?.stop());

describe("statistics", () => {
  it("DELETE /stats answers the counts as they were, then zeroes them", async () => {
    await sim.control.resetStats();
    const soap = new RawSoap(sim.info.url);
    await soap.login(sc, sim.info.username, sim.info.password);
    await soap.call("CurrentTime", serviceInstance);
    await soap.call("CurrentTime", serviceInstance);
    const before = await sim.control.resetStats();
    expect(before.methods).toEqual({ Login: 1, CurrentTime: 2 });
    expect(before.soapRequests).toBe(3);
    const after = await sim.control.stats();
    expect(after.methods).toEqual({});
    expect(after.soapRequests).toBe(0);
    expect(after.connections).toBe(0);
  });

  it("counts each TCP connection the SDK server accepts once, however many calls it carries", async () => {
    await sim.control.resetStats();
    const one = new Agent({ connections: 1 });
    const soap = new RawSoap(sim.info.url, one);
    await soap.login(sc, sim.info.username, sim.info.password);
    for (let i = 0; i < 3; i++) await soap.call("CurrentTime", serviceInstance);
    expect((await sim.control.stats()).connections).toBe(1);

    const two = new Agent({ connections: 1 });
    await new RawSoap(sim.info.url, two).serviceContent();
    expect((await sim.control.stats()).connections).toBe(2);
    await Promise.all([one.close(), two.close()]);
  });

  it("counts TLS connections the same way", async () => {
    const tls = await startVcsim({ tls: true, clusters: 0, hosts: 0 });
    try {
      const agent = new Agent({ connections: 1, connect: { ca: readFileSync(tls.info.caFile!) } });
      const soap = new RawSoap(tls.info.url, agent);
      const tlsSc = await soap.serviceContent();
      await soap.login(tlsSc, tls.info.username, tls.info.password);
      expect((await tls.control.stats()).connections).toBe(1);
      // A second client (own pool) opens a second one; a failed handshake counts too.
      await new RawSoap(tls.info.url, new Agent({ connect: { ca: readFileSync(tls.info.caFile!) } })).serviceContent();
      await new RawSoap(tls.info.url, new Agent()).serviceContent().catch(() => undefined);
      expect((await tls.control.stats()).connections).toBe(3);
      await agent.close();
    } finally {
      await tls.stop();
    }
  });
});

describe("live sessions", () => {
  async function login(): Promise<{ soap: RawSoap; key: string }> {
    const soap = new RawSoap(sim.info.url);
    const session = await soap.login(sc, sim.info.username, sim.info.password);
    return { soap, key: String(session?.key) };
  }

  it("counts exactly the sessions logged in: Login adds, Logout, TerminateSession and expiry remove", async () => {
    await sim.control.expireSessions();
    expect(await sim.control.liveSessions()).toBe(0);
    const a = await login();
    const b = await login();
    const c = await login();
    expect(await sim.control.liveSessions()).toBe(3);

    // A failed login and calls on a live session change nothing.
    await new RawSoap(sim.info.url).login(sc, sim.info.username, "wrong").catch(() => undefined);
    await b.soap.call("CurrentTime", serviceInstance);
    expect(await sim.control.liveSessions()).toBe(3);

    await a.soap.call("Logout", toMoRef(sc.sessionManager));
    expect(await sim.control.liveSessions()).toBe(2);
    await b.soap.call("TerminateSession", toMoRef(sc.sessionManager), `<sessionId>${c.key}</sessionId>`);
    expect(await sim.control.liveSessions()).toBe(1);
    expect(await sim.control.expireSessions()).toBe(1);
    expect(await sim.control.liveSessions()).toBe(0);
  });

  it("agrees with the sessionList a client reads, less the harness's own session", async () => {
    await sim.control.expireSessions();
    const a = await login();
    const b = await login();
    const props = await a.soap.properties(sc, toMoRef(sc.sessionManager), ["sessionList"]);
    const list = props.sessionList as Parsed;
    const keys = (Array.isArray(list.UserSession) ? list.UserSession : [list.UserSession]).map((s: Parsed) => String(s.key));
    expect(keys).toEqual(expect.arrayContaining([a.key, b.key]));
    // Like vCenter's own service sessions, the harness's one is listed but is nobody's leak.
    expect(keys).toHaveLength(3);
    expect(await sim.control.liveSessions()).toBe(2);
  });
});
