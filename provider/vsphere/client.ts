// A vim25 session: login, the session cookie, re-login when the session expires,
// retries with back-off on connection failures (never blindly for calls that change
// state), TLS policy, the version check, a round-trip counter and a logging hook that
// never sees a password or a cookie.
import { setTimeout as sleep } from "node:timers/promises";
import { request, type Agent } from "undici";
import { z } from "zod";
import {
  ConnectionError,
  HttpError,
  NotAuthenticatedFault,
  OutcomeUnknownError,
  UnsupportedVersionError,
  VSphereError,
  VimFault,
} from "./errors.js";
import { buildEnvelope, parseEnvelope, type MethodArgs } from "./soap/envelope.js";
import { MoRef, type VimValue } from "./soap/xml.js";
import { dataObject, moRef, str } from "./schema.js";
import { classifyFailure, createDispatcher, explainTlsFailure, type TlsOptions } from "./transport.js";

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

export interface LogEvent {
  level: "debug" | "info" | "warn";
  event: "call" | "retry" | "login" | "relogin" | "logout" | "outcome-check";
  message: string;
  method?: string;
  attempt?: number;
  ms?: number;
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

/**
 * Methods that may be replayed after a broken connection: they only read, or
 * repeating them leaves the same state (a duplicate view or session is harmless
 * and dies with the session). Every other method is checked before a replay.
 */
export const REPLAY_SAFE_METHODS: ReadonlySet<string> = new Set([
  "RetrieveServiceContent",
  "Login",
  "Logout",
  "CurrentTime",
  "SessionIsActive",
  "RetrieveProperties",
  "RetrievePropertiesEx",
  "ContinueRetrievePropertiesEx",
  "CancelRetrievePropertiesEx",
  "WaitForUpdatesEx",
  "CheckForUpdates",
  "CreateContainerView",
  "CreateListView",
  "CreatePropertyCollector",
  "CreateFilter",
  "DestroyView",
  "DestroyPropertyCollector",
  "DestroyPropertyFilter",
  "FindByUuid",
  "FindAllByUuid",
  "FindByInventoryPath",
  "FindByIp",
  "FindByDnsName",
  "FindChild",
  "SearchDatastore_Task",
  "SearchDatastoreSubFolders_Task",
  "QueryConfigOption",
  "QueryConfigOptionDescriptor",
  "QueryConfigTarget",
  "QueryTargetCapabilities",
  "QueryVirtualDiskUuid",
  "QueryAvailablePerfMetric",
  "HttpNfcLeaseProgress",
  "RefreshDatastore",
]);

const ServiceContent = dataObject({
  about: dataObject({
    name: str,
    fullName: str,
    vendor: str,
    version: str,
    build: str,
    apiType: str,
    apiVersion: str,
    instanceUuid: str.optional(),
  }),
  rootFolder: moRef,
  propertyCollector: moRef,
  viewManager: moRef.optional(),
  sessionManager: moRef.optional(),
  searchIndex: moRef.optional(),
  fileManager: moRef.optional(),
  virtualDiskManager: moRef.optional(),
  ovfManager: moRef.optional(),
  customFieldsManager: moRef.optional(),
  taskManager: moRef.optional(),
});
export type ServiceContent = z.infer<typeof ServiceContent>;

const UserSession = dataObject({ key: str, userName: str, fullName: str.optional() });
export type UserSession = z.infer<typeof UserSession>;

/** Counters for tests and benchmarks. */
export interface ClientStats {
  /** HTTP requests sent, retries included. */
  roundTrips: number;
  byMethod: Record<string, number>;
  retries: number;
  relogins: number;
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

/**
 * A logged-in vim25 client. Create it with `VimClient.connect()`, share it between
 * concurrent callers (they share one session and one re-login), `close()` it.
 */
export class VimClient {
  readonly endpoint: string;
  readonly stats: ClientStats = { roundTrips: 0, byMethod: {}, retries: 0, relogins: 0 };
  readonly options: Readonly<
    Required<Pick<ClientOptions, "apiRetryCount" | "retryBaseDelayMs" | "retryMaxDelayMs" | "taskPollIntervalMs" | "maximumObjects" | "requestTimeoutMs">>
  >;

  #serviceContent: ServiceContent | undefined;
  #session: UserSession | undefined;
  #cookie: string | undefined;
  #generation = 0;
  #relogin: Promise<void> | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #dispatcher: Agent;
  readonly #opts: ClientOptions;

  private constructor(opts: ClientOptions) {
    this.#opts = opts;
    const protocol = opts.protocol ?? "https";
    const port = opts.port ?? 443;
    const host = opts.host.includes(":") && !opts.host.startsWith("[") ? `[${opts.host}]` : opts.host;
    this.endpoint = `${protocol}://${host}:${port}/sdk`;
    this.options = {
      apiRetryCount: opts.apiRetryCount ?? 10,
      retryBaseDelayMs: opts.retryBaseDelayMs ?? 250,
      retryMaxDelayMs: opts.retryMaxDelayMs ?? 10_000,
      taskPollIntervalMs: opts.taskPollIntervalMs ?? 500,
      maximumObjects: opts.maximumObjects ?? 100,
      requestTimeoutMs: opts.requestTimeoutMs ?? 300_000,
    };
    this.#dispatcher = createDispatcher(opts);
  }

  /** Reads the service content, checks the version, and logs in. */
  static async connect(opts: ClientOptions): Promise<VimClient> {
    const client = new VimClient(opts);
    try {
      const sc = ServiceContent.parse(await client.invoke("RetrieveServiceContent", SERVICE_INSTANCE));
      client.#serviceContent = sc;
      const minimum = opts.minimumVersion ?? MINIMUM_VCENTER_VERSION;
      if (!versionAtLeast(sc.about.version, minimum)) {
        throw new UnsupportedVersionError(client.endpoint, sc.about.version, minimum);
      }
      if (sc.about.apiType !== "VirtualCenter") {
        throw new UnsupportedVersionError(client.endpoint, `${sc.about.fullName} (${sc.about.apiType}, not vCenter)`, `${minimum} (vCenter)`);
      }
      await client.login();
      const every = opts.sessionKeepAliveMs ?? 0;
      if (every > 0) {
        client.#keepAlive = setInterval(() => {
          client.invoke("CurrentTime", SERVICE_INSTANCE).catch(() => {});
        }, every).unref();
      }
      return client;
    } catch (err) {
      await client.#dispatcher.close().catch(() => {});
      throw err;
    }
  }

  get serviceContent(): ServiceContent {
    if (!this.#serviceContent) throw new Error("not connected");
    return this.#serviceContent;
  }

  /** The logged-in session (user name and key; the key is not the cookie). */
  get session(): UserSession | undefined {
    return this.#session;
  }

  /** The API version the server speaks (the SOAPAction header names it). */
  get apiVersion(): string {
    return this.#serviceContent?.about.apiVersion ?? "5.5";
  }

  private log(event: LogEvent): void {
    const sink = this.#opts.onLog;
    if (!sink) return;
    sink({ ...event, message: this.redact(event.message) });
  }

  /** Removes the password and the session cookie from text bound for logs. */
  redact(text: string): string {
    let out = text;
    for (const secret of [this.#opts.password, this.#cookie, this.#cookie?.split("=")[1]]) {
      if (secret && secret.length >= 3) out = out.split(secret).join("***");
    }
    return out;
  }

  private async login(): Promise<void> {
    const sm = this.serviceContent.sessionManager;
    if (!sm) throw new VimFault("NotSupported", `${this.endpoint} has no session manager`);
    this.#cookie = undefined;
    const started = Date.now();
    const session = await this.invoke("Login", sm, { userName: this.#opts.username, password: this.#opts.password });
    this.#session = UserSession.parse(session);
    this.#generation++;
    this.log({ level: "info", event: "login", message: `logged in to ${this.endpoint} as ${this.#session.userName}`, ms: Date.now() - started });
  }

  /** One re-login for all callers that saw the session of `generation` expire. */
  private relogin(generation: number): Promise<void> {
    if (generation !== this.#generation) return Promise.resolve(); // someone already did
    if (!this.#relogin) {
      this.stats.relogins++;
      this.log({ level: "warn", event: "relogin", message: `session on ${this.endpoint} expired; logging in again` });
      this.#relogin = this.login().finally(() => {
        this.#relogin = undefined;
      });
    }
    return this.#relogin;
  }

  /**
   * Calls a vim25 method on `self` and returns its `returnval` (parsed, untyped:
   * read it with a zod schema). Throws VimFault subclasses for server faults.
   */
  async invoke(method: string, self: MoRef, args: MethodArgs = {}, opts: CallOptions = {}): Promise<VimValue | undefined> {
    if (this.#closed) throw new Error(`client for ${this.endpoint} is closed`);
    for (let reauth = 0; ; reauth++) {
      const generation = this.#generation;
      try {
        return await this.send(method, self, args, opts);
      } catch (err) {
        const sessionCall = method === "Login" || method === "Logout" || method === "RetrieveServiceContent";
        if (err instanceof NotAuthenticatedFault && !sessionCall && this.#session && reauth === 0) {
          // The server refused before doing anything, so the replay is safe.
          await this.relogin(generation);
          continue;
        }
        throw err;
      }
    }
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.options.retryMaxDelayMs, this.options.retryBaseDelayMs * 2 ** (attempt - 1));
    return cap / 2 + Math.random() * (cap / 2);
  }

  private async send(method: string, self: MoRef, args: MethodArgs, opts: CallOptions): Promise<VimValue | undefined> {
    const envelope = buildEnvelope(method, self, args);
    const maxAttempts = 1 + this.options.apiRetryCount;
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      let failure: unknown;
      let notApplied = false;
      try {
        this.stats.roundTrips++;
        this.stats.byMethod[method] = (this.stats.byMethod[method] ?? 0) + 1;
        const res = await request(this.endpoint, {
          method: "POST",
          dispatcher: this.#dispatcher,
          headers: {
            "content-type": "text/xml; charset=utf-8",
            soapaction: `urn:vim25/${this.apiVersion}`,
            ...(this.#cookie ? { cookie: this.#cookie } : {}),
          },
          body: envelope,
          headersTimeout: this.options.requestTimeoutMs,
          bodyTimeout: this.options.requestTimeoutMs,
        });
        const text = await res.body.text();
        if (!this.#cookie || method === "Login") this.takeCookie(res.headers["set-cookie"]);
        if (res.statusCode === 503 || res.statusCode === 429) {
          // Refused before processing (vCenter's proxy while vpxd is busy or down).
          failure = new HttpError(this.endpoint, method, res.statusCode, text.trim());
          notApplied = true;
        } else {
          if (!text.trimStart().startsWith("<")) throw new HttpError(this.endpoint, method, res.statusCode, text.trim());
          const outcome = parseEnvelope(text, method);
          this.log({ level: "debug", event: "call", method, attempt, ms: Date.now() - started, message: `${method} ${outcome.ok ? "ok" : outcome.fault.code}` });
          if (!outcome.ok) throw outcome.fault.attachContext(method);
          return outcome.value;
        }
      } catch (err) {
        if (err instanceof VSphereError) throw err;
        const kind = classifyFailure(err);
        if (kind === "tls") throw await explainTlsFailure(err, this.#opts.host, this.#opts.port ?? 443, this.#opts);
        if (kind === "fatal") throw new ConnectionError(this.endpoint, method, attempt, err);
        failure = err;
        notApplied = kind === "notSent";
      }

      if (!notApplied && !REPLAY_SAFE_METHODS.has(method)) {
        if (!opts.checkApplied) throw new OutcomeUnknownError(this.endpoint, method, failure);
        this.log({ level: "warn", event: "outcome-check", method, attempt, message: `${method}: connection broke after sending; checking whether it took effect` });
        const check = await opts.checkApplied();
        if (check.applied) return check.value;
      }
      if (attempt >= maxAttempts) throw new ConnectionError(this.endpoint, method, attempt, failure);
      this.stats.retries++;
      const delay = this.backoff(attempt);
      this.log({
        level: "warn",
        event: "retry",
        method,
        attempt,
        message: `${method} to ${this.endpoint} failed (${(failure as Error)?.message ?? String(failure)}); retry ${attempt}/${this.options.apiRetryCount} in ${Math.round(delay)} ms`,
      });
      await sleep(delay);
    }
  }

  private takeCookie(header: string | string[] | undefined): void {
    for (const c of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
      const pair = c.split(";")[0]?.trim();
      if (pair?.startsWith("vmware_soap_session=")) this.#cookie = pair;
    }
  }

  /** Logs out (best effort) and closes the connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    const sm = this.#serviceContent?.sessionManager;
    if (this.#session && sm) {
      try {
        await this.send("Logout", sm, {}, {});
        this.log({ level: "info", event: "logout", message: `logged out of ${this.endpoint}` });
      } catch {
        // The session may be gone already; it expires on its own.
      }
    }
    this.#closed = true;
    this.#session = undefined;
    this.#cookie = undefined;
    await this.#dispatcher.close();
  }
}
