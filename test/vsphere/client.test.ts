// The session client: login, re-login, retries, replay safety, TLS, version, counters,
// logs; the HTTP channel's streaming requests.
import { createHash } from "node:crypto";
import { createServer } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import { VimClient, type LogEvent } from "../../provider/vsphere/client.js";
import {
  ConnectionError,
  DuplicateNameFault,
  FileAlreadyExistsFault,
  HttpError,
  InvalidEndpointError,
  InvalidLoginFault,
  ManagedObjectNotFoundFault,
  NotTlsError,
  OutcomeUnknownError,
  TlsError,
  UnsupportedVersionError,
} from "../../provider/vsphere/errors.js";
import { HttpChannel } from "../../provider/vsphere/http.js";
import { classifyFailure, classifyStatus } from "../../provider/vsphere/transport.js";
import { METHODS, REPLAY_SAFE_METHODS, methodInfo } from "../../provider/vsphere/methods.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { moRef, str } from "../../provider/vsphere/schema.js";
import { VIM_VERSION } from "../../provider/vsphere/soap/vim-types.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { simOptions, targetOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const SI = new MoRef("ServiceInstance", "ServiceInstance");

/** A loopback port nothing listens on. */
function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
}
const target = inject("vcenter");

describe(`session on the suite's vCenter (${target.kind})`, () => {
  it("logs in, reads the service content, and logs out on close", async () => {
    const client = await VimClient.connect(targetOptions(target));
    expect(client.serviceContent.about.apiType).toBe("VirtualCenter");
    expect(client.session?.userName).toContain(target.username.split("@")[0]);
    const now = await client.invoke("CurrentTime", SI);
    expect(Number.isNaN(Date.parse(String(now)))).toBe(false);
    await client.close();
    await expect(client.invoke("CurrentTime", SI)).rejects.toThrow(/closed/);
  });

  it("refuses a wrong password with InvalidLoginFault and does not echo it", async () => {
    const password = `${target.password}-wrong-Zq9`;
    const err = await VimClient.connect(targetOptions(target, { password })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLoginFault);
    expect((err as Error).message).not.toContain(password);
    expect((err as InvalidLoginFault).method).toBe("Login");
  });
});

describe("against a private simulator", () => {
  let sim: Vcsim;
  beforeAll(async () => {
    sim = await startVcsim({ hosts: 1, vms: 2 });
  });
  afterAll(() => sim?.stop());
  afterEach(() => sim.control.clearRules());

  async function connect(overrides = {}) {
    return VimClient.connect(simOptions(sim, overrides));
  }

  it("speaks the server's API version in SOAPAction after reading it, and counts its round trips", async () => {
    await sim.control.resetStats();
    const client = await connect();
    await client.invoke("CurrentTime", SI);
    await client.invoke("CurrentTime", SI);
    const stats = await sim.control.stats();
    expect(stats.soapActions).toEqual({ "urn:vim25/5.5": 1, "urn:vim25/6.5": 3 });
    expect(client.stats.roundTrips).toBe(stats.soapRequests);
    expect(client.stats.byMethod).toEqual({ RetrieveServiceContent: 1, Login: 1, CurrentTime: 2 });
    await client.close();
    expect((await sim.control.stats()).methods.Logout).toBe(1);
  });

  it("logs in again once when the session expires in the middle of a sequence", async () => {
    const client = await connect();
    const rule = await sim.control.addRule({ kind: "expireSessions", method: "CurrentTime", nth: 3 });
    for (let i = 0; i < 5; i++) await client.invoke("CurrentTime", SI);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
    expect(client.stats.relogins).toBe(1);
    expect(client.stats.byMethod.Login).toBe(2);
    await client.close();
  });

  it("shares one re-login between concurrent callers", async () => {
    const client = await connect();
    await sim.control.resetStats();
    await sim.control.expireSessions();
    const results = await Promise.all(Array.from({ length: 12 }, () => client.invoke("CurrentTime", SI)));
    expect(results.every((r) => typeof r === "string")).toBe(true);
    expect(client.stats.relogins).toBe(1);
    expect((await sim.control.stats()).methods.Login).toBe(1);
    await client.close();
  });

  it("retries a reset connection and succeeds", async () => {
    const client = await connect();
    const rule = await sim.control.addRule({ kind: "reset", method: "CurrentTime", times: 2 });
    await expect(client.invoke("CurrentTime", SI)).resolves.toBeTypeOf("string");
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 2 });
    expect(client.stats.retries).toBe(2);
    await client.close();
  });

  it("retries HTTP 503 (refused before processing) for any method", async () => {
    const client = await connect();
    await sim.control.addRule({ kind: "httpStatus", method: "CreateFolder", status: 503, times: 2 });
    const ref = moRef.parse(await client.invoke("CreateFolder", client.serviceContent.rootFolder, { name: `after-503-${Date.now()}` }));
    expect(ref.type).toBe("Folder");
    expect(client.stats.retries).toBe(2);
    await client.close();
  });

  it("gives up after apiRetryCount retries with one error naming the host and the attempts", async () => {
    const client = await connect({ apiRetryCount: 3 });
    const rule = await sim.control.addRule({ kind: "reset", method: "CurrentTime", times: -1 });
    const err = (await client.invoke("CurrentTime", SI).catch((e: unknown) => e)) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.code).toBe("ConnectionFailed");
    expect(err.attempts).toBe(4);
    expect(err.message).toContain(`${sim.info.host}:${sim.info.port}`);
    expect(err.message).toContain("after 4 attempts");
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 4 });
    await sim.control.clearRules();
    await client.close();
  });

  it("retries a refused connection, then fails clearly", async () => {
    const port = await freePort();
    const err = (await VimClient.connect({ host: "127.0.0.1", port, protocol: "http", username: "u", password: "p", apiRetryCount: 2, retryBaseDelayMs: 1 }).catch(
      (e: unknown) => e,
    )) as ConnectionError;
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.attempts).toBe(3);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("does not replay a call that changes state when the connection broke after sending it", async () => {
    const client = await connect();
    const name = `outcome-${Date.now()}`;
    await sim.control.addRule({ kind: "reset", method: "CreateFolder", phase: "after" });
    const err = await client.invoke("CreateFolder", client.serviceContent.rootFolder, { name }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutcomeUnknownError);
    expect((err as OutcomeUnknownError).code).toBe("OutcomeUnknown");
    // It was applied: a replay would have failed with DuplicateName.
    await expect(client.invoke("CreateFolder", client.serviceContent.rootFolder, { name })).rejects.toBeInstanceOf(DuplicateNameFault);
    await client.close();
  });

  it("checks first, then returns what was applied or replays what was not", async () => {
    const client = await connect();
    const root = client.serviceContent.rootFolder;
    const findChild = async (name: string) => {
      const found = await client.invoke("FindChild", client.serviceContent.searchIndex!, { entity: root, name });
      return found === undefined ? undefined : moRef.parse(found);
    };
    const check = (name: string) => async () => {
      const ref = await findChild(name);
      return ref ? ({ applied: true, value: ref } as const) : ({ applied: false } as const);
    };

    await sim.control.resetStats();
    const applied = `applied-${Date.now()}`;
    await sim.control.addRule({ kind: "reset", method: "CreateFolder", phase: "after" });
    const ref = await client.invoke("CreateFolder", root, { name: applied }, { checkApplied: check(applied) });
    expect(ref).toEqual(await findChild(applied));
    expect((await sim.control.stats()).methods.CreateFolder).toBe(1);

    await sim.control.clearRules();
    await sim.control.resetStats();
    const replayed = `replayed-${Date.now()}`;
    await sim.control.addRule({ kind: "reset", method: "CreateFolder", phase: "before" });
    const ref2 = moRef.parse(await client.invoke("CreateFolder", root, { name: replayed }, { checkApplied: check(replayed) }));
    expect(ref2).toEqual(await findChild(replayed));
    expect((await sim.control.stats()).methods.CreateFolder).toBe(2);
    await client.close();
  });

  it("treats HTTP 502 and 504 as maybe applied: replays only what is replay-safe, checks the rest", async () => {
    const client = await connect();
    const root = client.serviceContent.rootFolder;
    for (const status of [502, 504]) {
      await sim.control.addRule({ kind: "httpStatus", method: "CurrentTime", status });
      await expect(client.invoke("CurrentTime", SI)).resolves.toBeTypeOf("string");

      await sim.control.addRule({ kind: "httpStatus", method: "CreateFolder", status });
      const err = await client.invoke("CreateFolder", root, { name: `gw-${status}-${Date.now()}` }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OutcomeUnknownError);
      expect((err as Error).message).toContain(`HTTP ${status}`);

      await sim.control.addRule({ kind: "httpStatus", method: "CreateFolder", status });
      let checked = 0;
      const ref = await client.invoke(
        "CreateFolder",
        root,
        { name: `gw-checked-${status}-${Date.now()}` },
        {
          checkApplied: async () => {
            checked++;
            return { applied: false };
          },
        },
      );
      expect(moRef.parse(ref).type).toBe("Folder");
      expect(checked).toBe(1);
    }
    await client.close();
  });

  it("has a method table: reads are replay-safe, changes and unknown methods are not", () => {
    expect(methodInfo("RetrievePropertiesEx")).toMatchObject({ replaySafe: true, returnsTask: false });
    expect(methodInfo("CreateFolder")).toMatchObject({ replaySafe: false, returnsTask: false });
    expect(methodInfo("CloneVM_Task")).toMatchObject({ replaySafe: false, returnsTask: true });
    expect(methodInfo("SomeMethodNobodyListed")).toEqual({ replaySafe: false, returnsTask: false });
    expect(methodInfo("SomeNew_Task")).toEqual({ replaySafe: false, returnsTask: true });
    expect([...REPLAY_SAFE_METHODS].every((m) => METHODS[m]?.replaySafe)).toBe(true);
    expect(REPLAY_SAFE_METHODS.has("CreateFolder")).toBe(false);
  });

  it("classifies failures by what a retry can do", () => {
    const err = (code: string, message = code) => Object.assign(new Error(message), { code });
    for (const code of ["ENOTFOUND", "ERR_INVALID_URL", "EINVAL", "UND_ERR_INVALID_ARG"]) expect(classifyFailure(err(code)), code).toBe("fatal");
    for (const code of ["ECONNREFUSED", "EHOSTUNREACH", "UND_ERR_CONNECT_TIMEOUT"]) expect(classifyFailure(err(code)), code).toBe("notSent");
    for (const code of ["ECONNRESET", "EPIPE", "UND_ERR_SOCKET", "UND_ERR_HEADERS_TIMEOUT"]) expect(classifyFailure(err(code)), code).toBe("maybeSent");
    expect(classifyFailure(err("EPROTO", "write EPROTO 40E8:error:0A00010B:SSL routines:ssl3_get_record:wrong version number"))).toBe("tls");
    expect(classifyFailure(err("ERR_SSL_WRONG_VERSION_NUMBER"))).toBe("tls");
    expect(classifyFailure(err("UNABLE_TO_VERIFY_LEAF_SIGNATURE"))).toBe("tls");
    expect(classifyFailure(new TypeError("wrapped", { cause: err("ENOTFOUND") }))).toBe("fatal");
    expect([429, 502, 503, 504, 500].map(classifyStatus)).toEqual(["notSent", "maybeSent", "notSent", "maybeSent", undefined]);
  });

  it("fails at once, naming the host, for a host that cannot be right", async () => {
    for (const host of ["127.0.0.1:18999", "https://vc.example.com", "vc example.com", "[]", "", "vc.example.com/sdk"]) {
      const started = Date.now();
      const err = await VimClient.connect({ host, username: "u", password: "p", retryBaseDelayMs: 1000 }).catch((e: unknown) => e);
      expect(err, host).toBeInstanceOf(InvalidEndpointError);
      expect((err as InvalidEndpointError).message).toContain(JSON.stringify(host));
      expect(Date.now() - started).toBeLessThan(1000); // no retry happened (the first back-off is 500-1000 ms)
    }
  });

  it("streams a file to the datastore and back on the session, with progress, over the same connection pool", async () => {
    const client = await connect();
    const chunk = 64 * 1024;
    const chunks = 80; // 5 MiB
    const total = chunk * chunks;
    const sentHash = createHash("sha256");
    let made = 0;
    async function* generate() {
      for (let i = 0; i < chunks; i++) {
        const c = Buffer.alloc(chunk, (i * 7) % 251);
        c.writeUInt32BE(i, 0);
        sentHash.update(c);
        made++;
        yield c;
      }
    }
    const progress: number[] = [];
    const path = `/folder/stream-${Date.now()}.bin?dcPath=DC0&dsName=LocalDS_0`;
    await sim.control.resetStats();
    const put = await client.http.request({ method: "PUT", path, body: generate(), length: total, onProgress: (sent) => progress.push(sent) });
    await put.body.dump();
    expect(put.status).toBeLessThan(300);
    expect(made).toBe(chunks);
    expect(progress.at(-1)).toBe(total);
    expect(progress.length).toBeGreaterThanOrEqual(chunks);
    expect(progress.every((p, i) => i === 0 || p > progress[i - 1]!)).toBe(true);
    expect((await sim.control.stats()).uploadBytes).toBe(total);

    const got = await client.http.request({ method: "GET", path });
    const gotHash = createHash("sha256");
    let bytes = 0;
    for await (const c of got.body) {
      gotHash.update(c as Buffer);
      bytes += (c as Buffer).length;
    }
    expect(bytes).toBe(total);
    expect(gotHash.digest("hex")).toBe(sentHash.digest("hex"));

    const missing = await client.http.request({ method: "GET", path: `/folder/nope-${Date.now()}.bin?dcPath=DC0&dsName=LocalDS_0` }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HttpError);
    expect((missing as HttpError).status).toBe(404);
    await client.close();
  });

  it("never resends a streaming body: a cut upload is OutcomeUnknown, sent once", async () => {
    const client = await connect();
    await sim.control.resetStats();
    const file = `/folder/cut-${Date.now()}.bin`;
    await sim.control.addRule({ kind: "cutUpload", afterBytes: 100_000, path: file });
    async function* body() {
      for (let i = 0; i < 16; i++) yield Buffer.alloc(64 * 1024, i);
    }
    const err = await client.http
      .request({ method: "PUT", path: `${file}?dcPath=DC0&dsName=LocalDS_0`, body: body(), length: 16 * 64 * 1024 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutcomeUnknownError);
    expect((err as Error).message).toMatch(/^PUT \/folder\/cut-/);
    expect((await sim.control.stats()).uploads).toBe(1);
    await client.close();
  });

  it("retries a refused connection only when the body can be made again", async () => {
    const port = await freePort();
    const channel = new HttpChannel({ host: "127.0.0.1", port, protocol: "http", requestTimeoutMs: 5000, apiRetryCount: 2, retryBaseDelayMs: 1, retryMaxDelayMs: 2 });
    let made = 0;
    const fresh = () => {
      made++;
      return (async function* () {
        yield Buffer.from("abc");
      })();
    };
    const replayable = (await channel.request({ method: "PUT", path: "/folder/x", body: fresh, length: 3 }).catch((e: unknown) => e)) as ConnectionError;
    expect(replayable).toBeInstanceOf(ConnectionError);
    expect(replayable.attempts).toBe(3);
    expect(made).toBe(3);
    const once = (await channel.request({ method: "PUT", path: "/folder/x", body: fresh(), length: 3 }).catch((e: unknown) => e)) as ConnectionError;
    expect(once).toBeInstanceOf(ConnectionError);
    expect(once.attempts).toBe(1);
    await channel.close();
  });

  it("logs in over one connection, and keeps sequential calls on it", async () => {
    await sim.control.resetStats();
    const client = await connect();
    expect((await sim.control.stats()).connections).toBe(1);
    expect(client.stats.connections).toBe(1);
    for (let i = 0; i < 5; i++) await client.invoke("CurrentTime", SI);
    await client.close();
    expect((await sim.control.stats()).connections).toBe(1);
    expect(client.stats.connections).toBe(1);
  });

  it("raises the server's faults as typed errors that name the method", async () => {
    const client = await connect();
    const root = client.serviceContent.rootFolder;
    const name = `dup-${Date.now()}`;
    await client.invoke("CreateFolder", root, { name });
    const dup = (await client.invoke("CreateFolder", root, { name }).catch((e: unknown) => e)) as DuplicateNameFault;
    expect(dup).toBeInstanceOf(DuplicateNameFault);
    expect(dup.message).toMatch(/^CreateFolder failed: DuplicateName/);
    await expect(new PropertyCollector(client).get(new MoRef("Folder", "group-nope"), z.object({ name: str }))).rejects.toBeInstanceOf(
      ManagedObjectNotFoundFault,
    );
    const fm = client.serviceContent.fileManager!;
    const [dc] = await new PropertyCollector(client).find(root, "Datacenter", z.object({ name: str }));
    const dir = `[LocalDS_0] made-${Date.now()}`;
    await client.invoke("MakeDirectory", fm, { name: dir, datacenter: dc!.obj, createParentDirectories: true });
    const exists = await client.invoke("MakeDirectory", fm, { name: dir, datacenter: dc!.obj, createParentDirectories: false }).catch((e: unknown) => e);
    expect(exists).toBeInstanceOf(FileAlreadyExistsFault);
    await client.close();
  });

  it("keeps an idle session alive when asked to, and stops when closed", async () => {
    await sim.control.resetStats();
    let pings = 0;
    let twoPings!: () => void;
    const pinged = new Promise<void>((resolve) => (twoPings = resolve));
    const client = await connect({
      sessionKeepAliveMs: 40,
      onLog: (e: LogEvent) => {
        if (e.event === "keep-alive" && ++pings === 2) twoPings();
      },
    });
    await pinged;
    await client.close();
    const after = (await sim.control.stats()).methods.CurrentTime ?? 0;
    expect(after).toBeGreaterThanOrEqual(2);
    // Time itself is under test here: no ping may come in the next five intervals.
    await new Promise((r) => setTimeout(r, 200));
    expect((await sim.control.stats()).methods.CurrentTime ?? 0).toBe(after);
    expect(pings).toBeLessThanOrEqual(after);
  });

  it("never logs the password or the session cookie", async () => {
    const events: LogEvent[] = [];
    const client = await connect({ onLog: (e: LogEvent) => events.push(e) });
    const firstKey = client.session!.key; // vcsim's cookie value is the session key
    await sim.control.addRule({ kind: "reset", method: "CurrentTime" });
    await client.invoke("CurrentTime", SI);
    await sim.control.expireSessions();
    await client.invoke("CurrentTime", SI);
    const secondKey = client.session!.key;
    expect(secondKey).not.toBe(firstKey);
    const kinds = new Set(events.map((e) => e.event));
    expect(kinds).toEqual(new Set(["call", "login", "retry", "relogin"]));
    const text = JSON.stringify(events);
    expect(text).not.toContain(sim.info.password);
    expect(text).not.toContain(firstKey);
    expect(text).not.toContain(secondKey);
    expect(client.redact(`cookie ${secondKey} pw ${sim.info.password}`)).toBe("cookie *** pw ***");
    await client.close();
    expect(events.at(-1)?.event).toBe("logout");
    expect(JSON.stringify(events)).not.toContain(secondKey);
  });
});

describe("version check", () => {
  it("refuses vCenter older than 5.5.0 with a clear error", async () => {
    const sim = await startVcsim({ hosts: 1, apiVersion: "5.1.0" });
    try {
      const err = await VimClient.connect(simOptions(sim)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsupportedVersionError);
      expect((err as UnsupportedVersionError).code).toBe("UnsupportedVersion");
      expect((err as Error).message).toMatch(/runs vCenter 5\.1\.0; the driver supports vCenter 5\.5\.0 and later/);
      expect((await sim.control.stats()).methods.Login).toBeUndefined();
    } finally {
      await sim.stop();
    }
  });

  it("speaks no newer API than its vim25 schema, however new the vCenter", async () => {
    const sim = await startVcsim({ hosts: 1, apiVersion: "8.0.2" });
    try {
      await sim.control.resetStats();
      const client = await VimClient.connect(simOptions(sim));
      expect(client.serviceContent.about.apiVersion).toBe("8.0");
      expect(client.apiVersion).toBe(VIM_VERSION);
      await client.close();
      expect(Object.keys((await sim.control.stats()).soapActions).sort()).toEqual(["urn:vim25/5.5", `urn:vim25/${VIM_VERSION}`]);
    } finally {
      await sim.stop();
    }
  });

  it("accepts 5.5.0", async () => {
    const sim = await startVcsim({ hosts: 1, apiVersion: "5.5.0" });
    try {
      const client = await VimClient.connect(simOptions(sim));
      expect(client.apiVersion).toBe("5.5");
      await client.close();
    } finally {
      await sim.stop();
    }
  });
});

describe("TLS", () => {
  let sim: Vcsim;
  let other: Vcsim;
  beforeAll(async () => {
    [sim, other] = await Promise.all([startVcsim({ tls: true, hosts: 1 }), startVcsim({ tls: true, hosts: 1 })]);
  });
  afterAll(async () => {
    await Promise.all([sim?.stop(), other?.stop()]);
  });

  const opts = (o: object) => ({ ...simOptions(sim), caFile: undefined, ...o });

  it("verifies with caFile", async () => {
    const client = await VimClient.connect(opts({ caFile: sim.info.caFile }));
    await client.close();
  });

  it("fails against the system CAs, saying how to fix it and which certificate it saw", async () => {
    const err = (await VimClient.connect(opts({})).catch((e: unknown) => e)) as TlsError;
    expect(err).toBeInstanceOf(TlsError);
    expect(err.code).toBe("TlsVerificationFailed");
    expect(err.message).toMatch(/set caFile/);
    expect(err.message).toContain(sim.info.thumbprint!);
    expect(err.message).toContain(`https://${sim.info.host}:${sim.info.port}/certs/download.zip`);
  });

  it("says a server that does not speak TLS does not, instead of blaming a certificate, at once", async () => {
    const plain = await startVcsim({ tls: false, hosts: 1 });
    try {
      for (const tls of [{}, { insecure: true }, { thumbprint: sim.info.thumbprint }]) {
        const err = await VimClient.connect({ ...simOptions(plain), protocol: "https", retryBaseDelayMs: 1000, ...tls }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(NotTlsError);
        expect((err as Error).message).toContain(`the server at ${plain.info.host}:${plain.info.port} does not speak TLS (is it plain HTTP?`);
        expect((err as Error).message).not.toMatch(/trusted|caFile/);
      }
      expect((await plain.control.stats()).soapRequests).toBe(0);
    } finally {
      await plain.stop();
    }
  });

  it("fails with another server's CA, naming the caFile", async () => {
    const err = (await VimClient.connect(opts({ caFile: other.info.caFile })).catch((e: unknown) => e)) as TlsError;
    expect(err).toBeInstanceOf(TlsError);
    expect(err.message).toContain(`caFile ${other.info.caFile}`);
  });

  it("skips verification with insecure, and insecure is ignored when caFile is set", async () => {
    const client = await VimClient.connect(opts({ insecure: true }));
    await client.close();
    await expect(VimClient.connect(opts({ insecure: true, caFile: other.info.caFile }))).rejects.toBeInstanceOf(TlsError);
  });

  it("pins a SHA-1 or SHA-256 thumbprint, and refuses another certificate", async () => {
    for (const thumbprint of [sim.info.thumbprint!, sim.info.thumbprintSha256!.toLowerCase().replace(/:/g, "")]) {
      const client = await VimClient.connect(opts({ thumbprint }));
      await client.close();
    }
    const err = (await VimClient.connect(opts({ thumbprint: other.info.thumbprint })).catch((e: unknown) => e)) as TlsError;
    expect(err).toBeInstanceOf(TlsError);
    expect(err.code).toBe("ThumbprintMismatch");
    expect(err.message).toContain(sim.info.thumbprint!);
  });

  it("says what is wrong with a bad thumbprint or an unreadable caFile", async () => {
    await expect(VimClient.connect(opts({ thumbprint: "12:34" }))).rejects.toThrow(/want a SHA-1 \(40 hex digits/);
    await expect(VimClient.connect(opts({ caFile: "/nonexistent/ca.pem" }))).rejects.toThrow(/caFile \/nonexistent\/ca\.pem: cannot read it/);
  });
});
