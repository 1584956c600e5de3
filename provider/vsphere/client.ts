// SOAP calls to vCenter, on top of the HTTP channel (http.ts) and the session
// (session.ts): retries with back-off on connection failures (never blindly for
// calls that change state: see methods.ts), the version check, a round-trip counter
// and a logging hook that never sees a password or a cookie.
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ConnectionError, HttpError, NotAuthenticatedFault, OutcomeUnknownError, ProtocolError, UnsupportedVersionError, VSphereError } from "./errors.js";
import { HttpChannel, backoffMs, type LogEvent } from "./http.js";
import { ServiceContentSchema, methodInfo } from "./methods.js";
import { Session, type UserSession } from "./session.js";
import { buildEnvelope, parseEnvelope, type MethodArgs } from "./soap/envelope.js";
import { VIM_VERSION } from "./soap/vim-types.js";
import { MoRef, type VimValue } from "./soap/xml.js";
import { classifyFailure, classifyStatus, type TlsOptions } from "./transport.js";

export type { LogEvent } from "./http.js";
export type { UserSession } from "./session.js";
export { METHODS, REPLAY_SAFE_METHODS, methodInfo, type MethodInfo } from "./methods.js";

/** The oldest vCenter the driver accepts (the seed: "vCenter version 5.5.0 and later"). */
export const MINIMUM_VCENTER_VERSION = "5.5.0";

/** Connection and behaviour settings; the defaults are the seed's `[vmware]` defaults. */
export interface ClientOptions extends TlsOptions {
  /** vCenter host name or address (`host_ip`). */
  host: string;
  /** `host_port`, default 443. */
  port?: number | undefined;
  /** "https" (default), or "http" for a simulator without TLS. */
  protocol?: "https" | "http" | undefined;
  username: string;
  password: string;
  /** Retries on connection failures (`api_retry_count`, default 10). */
  apiRetryCount?: number | undefined;
  /** First back-off delay; doubles each retry, with jitter, up to retryMaxDelayMs. */
  retryBaseDelayMs?: number | undefined;
  retryMaxDelayMs?: number | undefined;
  /** Task polling interval (`task_poll_interval`, default 0.5 s). */
  taskPollIntervalMs?: number | undefined;
  /** Objects per property-collector page (`maximum_objects`, default 100). */
  maximumObjects?: number | undefined;
  /** Longest wait for an answer to one request. */
  requestTimeoutMs?: number | undefined;
  /** Call CurrentTime this often to keep an idle session alive (0: never). */
  sessionKeepAliveMs?: number | undefined;
  /** Refuse vCenter older than this (default 5.5.0). */
  minimumVersion?: string | undefined;
  /** Receives log events; messages never contain the password or the session cookie. */
  onLog?: ((event: LogEvent) => void) | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /**
   * For a call that changes state: after a connection failure that may have
   * happened once the call was sent, this is asked whether the call took effect.
   * `{ applied: true, value }` ends the call with that value; `{ applied: false }`
   * makes replaying it safe. Without it such a failure is an OutcomeUnknownError.
   */
  checkApplied?: () => Promise<{ applied: true; value?: VimValue | undefined } | { applied: false }>;
}

export type ServiceContent = z.infer<typeof ServiceContentSchema>;

/**
 * Another SOAP service vCenter serves beside vim25 on the same session (SPBM: path
 * "/pbm", namespace "urn:pbm"). Its calls carry the vim session's cookie value in the
 * SOAP header (`vcSessionCookie`), which is how such a service authenticates them.
 */
export interface SoapService {
  /** The URL path, e.g. "/pbm". */
  path: string;
  /** The body's namespace, e.g. "urn:pbm". */
  namespace: string;
  /** The API version the SOAPAction names: `<namespace>/<version>`. */
  version: string;
}

/** What a call returned, and whether it came from checkApplied after a broken connection. */
export interface CallOutcome {
  value: VimValue | undefined;
  /** The answer was lost and `value` is what checkApplied found (e.g. the created object). */
  recovered: boolean;
}

/** Counters for tests and benchmarks. */
export interface ClientStats {
  /** SOAP requests sent, retries included. */
  roundTrips: number;
  byMethod: Record<string, number>;
  retries: number;
  relogins: number;
  /** TLS (or TCP) connections the client opened. */
  readonly connections: number;
}

const SERVICE_INSTANCE = new MoRef("ServiceInstance", "ServiceInstance");

/** "6.7.0" >= "5.5.0" */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map((n) => Number.parseInt(n, 10) || 0);
  const b = minimum.split(".").map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** A session's own calls: no re-login around them. */
const SESSION_METHODS = new Set(["Login", "Logout", "RetrieveServiceContent"]);

/**
 * A logged-in vim25 client. Create it with `VimClient.connect()`, share it between
 * concurrent callers (they share one session and one re-login), `close()` it.
 */
export class VimClient {
  readonly endpoint: string;
  readonly stats: ClientStats;
  readonly options: Readonly<
    Required<Pick<ClientOptions, "apiRetryCount" | "retryBaseDelayMs" | "retryMaxDelayMs" | "taskPollIntervalMs" | "maximumObjects" | "requestTimeoutMs">>
  >;
  /** The HTTP channel: authenticated streaming transfers on this session (`http.request`). */
  readonly http: HttpChannel;

  #serviceContent: ServiceContent | undefined;
  readonly #session: Session;
  #closed = false;
  readonly #opts: ClientOptions;

  private constructor(opts: ClientOptions) {
    this.#opts = opts;
    this.options = {
      apiRetryCount: opts.apiRetryCount ?? 10,
      retryBaseDelayMs: opts.retryBaseDelayMs ?? 250,
      retryMaxDelayMs: opts.retryMaxDelayMs ?? 10_000,
      taskPollIntervalMs: opts.taskPollIntervalMs ?? 500,
      maximumObjects: opts.maximumObjects ?? 100,
      requestTimeoutMs: opts.requestTimeoutMs ?? 300_000,
    };
    this.http = new HttpChannel({ ...opts, protocol: opts.protocol ?? "https", port: opts.port ?? 443, ...this.options });
    this.endpoint = `${this.http.origin}/sdk`;
    this.#session = new Session(
      (method, self, args, once) => this.send(method, self, args, {}, once).then((o) => o.value),
      this.http,
      { endpoint: this.endpoint, username: opts.username, password: opts.password, log: (e) => this.log(e) },
    );
    const session = this.#session;
    const http = this.http;
    this.stats = {
      roundTrips: 0,
      byMethod: {},
      retries: 0,
      get relogins() {
        return session.relogins;
      },
      get connections() {
        return http.connections;
      },
    };
  }

  /**
   * Reads the service content, checks the version, and logs in. A host that cannot
   * be right (a port or scheme in it) fails at once with InvalidEndpointError.
   */
  static async connect(opts: ClientOptions): Promise<VimClient> {
    const client = new VimClient(opts);
    try {
      const sc = ServiceContentSchema.parse(await client.invoke("RetrieveServiceContent", SERVICE_INSTANCE));
      client.#serviceContent = sc;
      const minimum = opts.minimumVersion ?? MINIMUM_VCENTER_VERSION;
      if (!versionAtLeast(sc.about.version, minimum)) {
        throw new UnsupportedVersionError(client.endpoint, sc.about.version, minimum);
      }
      if (sc.about.apiType !== "VirtualCenter") {
        throw new UnsupportedVersionError(client.endpoint, `${sc.about.fullName} (${sc.about.apiType}, not vCenter)`, `${minimum} (vCenter)`);
      }
      await client.#session.login(sc.sessionManager);
      client.#session.keepAlive(opts.sessionKeepAliveMs ?? 0, () => client.invoke("CurrentTime", SERVICE_INSTANCE));
      return client;
    } catch (err) {
      await client.http.close().catch(() => {});
      throw err;
    }
  }

  get serviceContent(): ServiceContent {
    if (!this.#serviceContent) throw new Error("not connected");
    return this.#serviceContent;
  }

  /** The logged-in session (user name and key; the key is not the cookie). */
  get session(): UserSession | undefined {
    return this.#session.user;
  }

  /**
   * The API version requests are spoken in (the SOAPAction header names it): the
   * server's, but no newer than the vim25 schema this driver was generated from. A
   * newer vCenter answers an older namespace as that version, so it never sends fields
   * the schema table does not know, and that are then refused when sent back (a port
   * group's policy read, then written, say).
   */
  get apiVersion(): string {
    const server = this.#serviceContent?.about.apiVersion ?? "5.5";
    return versionAtLeast(server, VIM_VERSION) ? VIM_VERSION : server;
  }

  /** Sends an event to `onLog` with the password and session cookie removed (also for the driver's modules). */
  log(event: LogEvent): void {
    const sink = this.#opts.onLog;
    if (!sink) return;
    sink({ ...event, message: this.redact(event.message) });
  }

  /** Removes the password and the session cookie from text bound for logs. */
  redact(text: string): string {
    let out = text;
    const cookie = this.http.cookie;
    for (const secret of [this.#opts.password, cookie, cookie?.split("=")[1], this.sessionCookieValue()]) {
      if (secret && secret.length >= 3) out = out.split(secret).join("***");
    }
    return out;
  }

  /**
   * Calls a vim25 method on `self` and returns its `returnval` (parsed, untyped:
   * read it with a zod schema). Throws VimFault subclasses for server faults.
   */
  async invoke(method: string, self: MoRef, args: MethodArgs = {}, opts: CallOptions = {}): Promise<VimValue | undefined> {
    return (await this.call(method, self, args, opts)).value;
  }

  /**
   * As `invoke`, and says whether the value came from `checkApplied` after the
   * answer was lost (for a `*_Task` method that value is the object made, not a task).
   */
  async call(method: string, self: MoRef, args: MethodArgs = {}, opts: CallOptions = {}): Promise<CallOutcome> {
    return this.callAt(undefined, method, self, args, opts);
  }

  /** As `invoke`, for a method of another service on this session (see SoapService). */
  async invokeAt(service: SoapService, method: string, self: MoRef, args: MethodArgs = {}, opts: CallOptions = {}): Promise<VimValue | undefined> {
    return (await this.callAt(service, method, self, args, opts)).value;
  }

  /** The session cookie's value, without its quotes (what vcSessionCookie carries). */
  private sessionCookieValue(): string | undefined {
    const cookie = this.http.cookie;
    const value = cookie?.slice(cookie.indexOf("=") + 1).replace(/^"(.*)"$/, "$1");
    return value || undefined;
  }

  private async callAt(service: SoapService | undefined, method: string, self: MoRef, args: MethodArgs, opts: CallOptions): Promise<CallOutcome> {
    if (this.#closed) throw new Error(`client for ${this.endpoint} is closed`);
    for (let reauth = 0; ; reauth++) {
      const generation = this.#session.generation;
      try {
        return await this.send(method, self, args, opts, undefined, service);
      } catch (err) {
        if (err instanceof NotAuthenticatedFault && !SESSION_METHODS.has(method) && this.#session.user && reauth === 0) {
          // The server refused before doing anything, so the replay is safe.
          await this.#session.relogin(generation, this.#serviceContent?.sessionManager);
          continue;
        }
        throw err;
      }
    }
  }

  /** One call with retries; `once` makes it a single attempt with its own deadline. */
  private async send(method: string, self: MoRef, args: MethodArgs, opts: CallOptions, once?: { timeoutMs: number }, service?: SoapService): Promise<CallOutcome> {
    const cookie = service && this.sessionCookieValue();
    const envelope = buildEnvelope(method, self, args, service ? { namespace: service.namespace, header: cookie ? { vcSessionCookie: cookie } : {} } : {});
    const endpoint = service ? `${this.http.origin}${service.path}` : this.endpoint;
    const info = methodInfo(method);
    const maxAttempts = once ? 1 : 1 + this.options.apiRetryCount;
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      let failure: unknown;
      let notApplied = false;
      try {
        this.stats.roundTrips++;
        this.stats.byMethod[method] = (this.stats.byMethod[method] ?? 0) + 1;
        const res = await this.http.exchange(
          service?.path ?? "/sdk",
          envelope,
          { "content-type": "text/xml; charset=utf-8", soapaction: service ? `${service.namespace}/${service.version}` : `urn:vim25/${this.apiVersion}` },
          once?.timeoutMs,
        );
        if (!service && (!this.http.cookie || method === "Login")) this.http.takeCookie(res.headers["set-cookie"]);
        const status = classifyStatus(res.status);
        if (status) {
          // 503/429: refused before processing; 502/504: it may have reached vCenter.
          failure = new HttpError(endpoint, method, res.status, res.text.trim());
          notApplied = status === "notSent";
        } else {
          if (!res.text.trimStart().startsWith("<")) throw new HttpError(endpoint, method, res.status, res.text.trim());
          const outcome = parseEnvelope(res.text, method);
          this.log({ level: "debug", event: "call", method, attempt, ms: Date.now() - started, message: `${method} ${outcome.ok ? "ok" : outcome.fault.code}` });
          if (!outcome.ok) throw outcome.fault.attachContext(method);
          if (info.result && !info.result.safeParse(outcome.value).success) {
            throw new ProtocolError(`${method} to ${endpoint}: the answer is not the expected ${info.returnsTask ? "task" : "value"}`);
          }
          return { value: outcome.value, recovered: false };
        }
      } catch (err) {
        if (err instanceof VSphereError) throw err;
        const known = await this.http.explain(err, method, attempt);
        if (known) throw known;
        failure = err;
        notApplied = classifyFailure(err) === "notSent";
      }

      if (!notApplied && !info.replaySafe) {
        if (!opts.checkApplied) throw new OutcomeUnknownError(endpoint, method, failure);
        this.log({ level: "warn", event: "outcome-check", method, attempt, message: `${method}: the answer was lost; checking whether it took effect` });
        const check = await opts.checkApplied();
        if (check.applied) return { value: check.value, recovered: true };
      }
      if (attempt >= maxAttempts) throw new ConnectionError(endpoint, method, attempt, failure);
      this.stats.retries++;
      const delay = backoffMs(attempt, this.options.retryBaseDelayMs, this.options.retryMaxDelayMs);
      this.log({
        level: "warn",
        event: "retry",
        method,
        attempt,
        message: `${method} to ${endpoint} failed (${(failure as Error)?.message ?? String(failure)}); retry ${attempt}/${this.options.apiRetryCount} in ${Math.round(delay)} ms`,
      });
      await sleep(delay);
    }
  }

  /**
   * Logs out (best effort: one attempt within `timeoutMs`, default 10 s) and closes
   * the connections. Resolves with whether vCenter confirmed the logout.
   */
  async close(opts: { timeoutMs?: number } = {}): Promise<boolean> {
    if (this.#closed) return false;
    this.#closed = true;
    const loggedOut = await this.#session.logout(this.#serviceContent?.sessionManager, opts.timeoutMs ?? 10_000);
    await this.http.close().catch(() => {});
    return loggedOut;
  }
}
