// The one HTTP channel to vCenter: one undici Agent (one connection pool) with the TLS
// policy of transport.ts, the session cookie, whole-answer exchanges for SOAP, and
// authenticated streaming requests for datastore (`/folder`) and NFC transfers. A host
// other than vCenter (the ESXi host an NFC lease names) gets a pool of its own, with
// the trust vCenter vouched for (trustOrigin), never vCenter's policy or cookie.
import { setTimeout as sleep } from "node:timers/promises";
import { Readable } from "node:stream";
import { request as undiciRequest, type Agent, type Dispatcher } from "undici";
import { ConnectionError, HttpError, OutcomeUnknownError, VSphereError } from "./errors.js";
import {
  checkHost,
  classifyFailure,
  classifyStatus,
  createDispatcher,
  createHostDispatcher,
  explainTlsFailure,
  normalizeThumbprint,
  type HostTrust,
  type TlsOptions,
} from "./transport.js";

/** A log event; messages never contain the password or the session cookie. */
export interface LogEvent {
  level: "debug" | "info" | "warn";
  event: "call" | "retry" | "login" | "relogin" | "logout" | "outcome-check" | "keep-alive" | "transfer" | "cleanup";
  message: string;
  method?: string;
  attempt?: number;
  ms?: number;
}

export interface ChannelOptions extends TlsOptions {
  host: string;
  port: number;
  protocol: "https" | "http";
  requestTimeoutMs: number;
  apiRetryCount: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
}

/** A body that is read once: it cannot be resent. */
export type StreamBody = Readable | AsyncIterable<Uint8Array>;
/**
 * A request body. A function that makes a fresh stream is replayable (a request
 * refused before anything was sent may be retried with a new stream); a stream
 * given as such is never resent.
 */
export type RequestBody = string | Uint8Array | StreamBody | (() => StreamBody);

export interface TransferRequest {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** Path and query on the vCenter (or host) origin, e.g. `/folder/a.vmdk?dcPath=DC0&dsName=ds1`. */
  path: string;
  /** Another origin (an NFC lease URL names the ESXi host); default: vCenter's. */
  origin?: string;
  body?: RequestBody;
  /** Bytes in the body: sent as Content-Length, which vCenter and ESXi require. */
  length?: number;
  contentType?: string;
  headers?: Record<string, string>;
  /** Bytes of the body handed to the connection so far, and the total. */
  onProgress?: (sent: number, total: number | undefined) => void;
}

export interface TransferResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The answer, to be read (or dumped) by the caller. */
  body: Dispatcher.ResponseData["body"];
}

export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const cap = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return cap / 2 + Math.random() * (cap / 2);
}

/** `https://host:port` with the port always written, so equal origins compare equal. */
export function canonicalOrigin(origin: string): string {
  const u = new URL(origin);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.protocol}//${u.hostname}:${port}`;
}

/** Waits one turn of the event loop: see `exchange`. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class HttpChannel {
  /** e.g. https://vc.example.com:443 */
  readonly origin: string;
  /** TLS (or TCP) connections opened so far. */
  connections = 0;
  #cookie: string | undefined;
  readonly #agent: Agent;
  /** The host without IPv6 brackets. */
  readonly #host: string;
  /** Pools of other hosts, by canonical origin, with the trust each was made with. */
  readonly #hosts = new Map<string, { agent: Agent; key: string }>();
  /** `origin` as canonicalOrigin spells it (lower case host, port written). */
  readonly #canonical: string;

  constructor(readonly opts: ChannelOptions) {
    const host = checkHost(opts.host);
    this.#host = host;
    this.origin = `${opts.protocol}://${host.includes(":") ? `[${host}]` : host}:${opts.port}`;
    this.#canonical = canonicalOrigin(this.origin);
    this.#agent = createDispatcher(opts);
    this.#agent.on("connect", () => {
      this.connections++;
    });
  }

  /** Whether a request to `origin` goes to vCenter (default origin, or the same one spelled otherwise). */
  isVCenter(origin: string | undefined): boolean {
    return origin === undefined || origin === this.origin || canonicalOrigin(origin) === this.#canonical;
  }

  /**
   * How to trust another host before a request to it: its certificate must be the one
   * `trust.thumbprint` names (as vCenter vouches for an ESXi host in an NFC lease) or be
   * verified by a CA (caFile, else the system's). vCenter's own origin keeps vCenter's
   * policy (nothing changes). The host's pool is kept while its trust stays the same;
   * a different trust replaces it (requests already out finish on the old one).
   * Without a call, another host is trusted by a CA only. A malformed thumbprint is a TlsError.
   */
  trustOrigin(origin: string, trust: HostTrust): void {
    if (this.isVCenter(origin)) return;
    this.#hostAgent(canonicalOrigin(origin), trust);
  }

  #hostAgent(origin: string, trust: HostTrust | undefined): Agent {
    const known = this.#hosts.get(origin);
    if (known && trust === undefined) return known.agent;
    const key = trust?.thumbprint ? normalizeThumbprint(trust.thumbprint) : "";
    if (known && known.key === key) return known.agent;
    const agent = createHostDispatcher(trust ?? {}, this.opts);
    this.#hosts.set(origin, { agent, key });
    // Closing waits for the requests it has; a failure to close is nothing to report.
    known?.agent.close().catch(() => undefined);
    return agent;
  }

  /** The pool a request to `origin` goes through. */
  #dispatcher(origin: string | undefined): Dispatcher {
    return origin === undefined || this.isVCenter(origin) ? this.#agent : this.#hostAgent(canonicalOrigin(origin), undefined);
  }

  /** The session cookie (`vmware_soap_session=...`), sent with every request. */
  get cookie(): string | undefined {
    return this.#cookie;
  }

  set cookie(value: string | undefined) {
    this.#cookie = value;
  }

  /** Keeps the session cookie of a Set-Cookie header. */
  takeCookie(header: string | string[] | undefined): void {
    for (const c of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
      const pair = c.split(";")[0]?.trim();
      if (pair?.startsWith("vmware_soap_session=")) this.#cookie = pair;
    }
  }

  /**
   * One request whose answer is read whole (SOAP). No retry here: what a failure
   * means for a replay is the caller's to decide (classifyFailure).
   */
  async exchange(path: string, body: string, headers: Record<string, string>, timeoutMs = this.opts.requestTimeoutMs) {
    const res = await undiciRequest(this.origin + path, {
      method: "POST",
      dispatcher: this.#agent,
      headers: { ...headers, ...(this.#cookie ? { cookie: this.#cookie } : {}) },
      body,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await res.body.text();
    // undici hands a kept-alive socket back to its pool one event-loop turn after
    // the answer ended (so a server that closes anyway is noticed first). A request
    // made in between finds the connection busy and the pool opens another: login
    // (RetrieveServiceContent, then Login at once) opened two TLS connections.
    await nextTurn();
    return { status: res.statusCode, headers: res.headers, text };
  }

  /** Turns a socket-level failure into the driver's error when no retry can help. */
  async explain(err: unknown, method: string, attempt: number, origin = this.origin): Promise<VSphereError | undefined> {
    if (err instanceof VSphereError) return err;
    const kind = classifyFailure(err);
    if (kind === "tls") {
      if (this.isVCenter(origin)) return explainTlsFailure(err, this.#host, this.opts.port, this.opts);
      const u = new URL(canonicalOrigin(origin));
      return explainTlsFailure(err, u.hostname.replace(/^\[|\]$/g, ""), Number(u.port), { caFile: this.opts.caFile });
    }
    if (kind === "fatal") return new ConnectionError(origin, method, attempt, err);
    return undefined;
  }

  /**
   * An authenticated request with a streaming body (datastore `/folder` PUT/GET, NFC
   * uploads), on the session's cookie and the same connection pool. A request that
   * never left (refused connection, 503/429) is retried only when its body can be
   * made again; once any byte of a body was sent, a broken connection is an
   * OutcomeUnknownError (the file may be partly written) for the caller to handle.
   * A body-less request (GET, HEAD, DELETE) is retried on any connection failure.
   * An answer of 400 or more is an HttpError.
   */
  async request(req: TransferRequest): Promise<TransferResponse> {
    const what = `${req.method} ${req.path.split("?")[0]}`;
    const replayable = req.body === undefined || typeof req.body === "string" || req.body instanceof Uint8Array || typeof req.body === "function";
    if (req.body !== undefined && typeof req.body !== "string" && !(req.body instanceof Uint8Array) && req.length === undefined) {
      throw new TypeError(`${what}: a streaming body needs its length (vCenter and ESXi require Content-Length)`);
    }
    const maxAttempts = 1 + this.opts.apiRetryCount;
    const origin = req.origin ?? this.origin;
    const toVCenter = this.isVCenter(origin);
    const dispatcher = this.#dispatcher(origin);
    for (let attempt = 1; ; attempt++) {
      let sent = 0;
      const body = this.#body(req, (n) => {
        sent += n;
        req.onProgress?.(sent, req.length);
      });
      let failure: unknown;
      let notSent = false;
      try {
        const res = await undiciRequest(origin + req.path, {
          method: req.method,
          dispatcher,
          headers: {
            ...(req.contentType ? { "content-type": req.contentType } : body !== undefined ? { "content-type": "application/octet-stream" } : {}),
            ...(req.length !== undefined ? { "content-length": String(req.length) } : {}),
            ...req.headers,
            // vCenter's session cookie goes to vCenter only: an NFC lease URL on an
            // ESXi host carries its own ticket.
            ...(this.#cookie && toVCenter ? { cookie: this.#cookie } : {}),
          },
          ...(body !== undefined ? { body } : {}),
          headersTimeout: this.opts.requestTimeoutMs,
          bodyTimeout: this.opts.requestTimeoutMs,
        });
        if (res.statusCode < 400) {
          if (typeof req.body === "string" || req.body instanceof Uint8Array) {
            const n = typeof req.body === "string" ? Buffer.byteLength(req.body) : req.body.byteLength;
            req.onProgress?.(n, n);
          }
          return { status: res.statusCode, headers: res.headers, body: res.body };
        }
        const text = (await res.body.text()).trim();
        const kind = classifyStatus(res.statusCode);
        const error = new HttpError(origin, what, res.statusCode, text);
        if (kind === undefined) throw error;
        failure = error;
        notSent = kind === "notSent";
      } catch (err) {
        if (err instanceof HttpError && err === failure) throw err;
        const known = await this.explain(err, what, attempt, origin);
        if (known) throw known;
        failure = err;
        notSent = classifyFailure(err) === "notSent";
      }
      const started = sent > 0 || (!notSent && req.body !== undefined);
      if (started) throw new OutcomeUnknownError(origin, what, failure);
      if (!replayable) throw new ConnectionError(origin, what, attempt, failure);
      if (attempt >= maxAttempts) throw new ConnectionError(origin, what, attempt, failure);
      await sleep(backoffMs(attempt, this.opts.retryBaseDelayMs, this.opts.retryMaxDelayMs));
    }
  }

  #body(req: TransferRequest, count: (bytes: number) => void): string | Uint8Array | Readable | undefined {
    const b = req.body;
    if (b === undefined) return undefined;
    if (typeof b === "string" || b instanceof Uint8Array) return b; // progress told once answered
    const source = typeof b === "function" ? b() : b;
    // Pulled by undici as the socket drains: never more than its buffers in memory.
    return Readable.from(
      (async function* counted() {
        for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
          const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          count(bytes.byteLength);
          yield bytes;
        }
      })(),
      { objectMode: false },
    );
  }

  async close(): Promise<void> {
    const hosts = [...this.#hosts.values()].map((h) => h.agent.close());
    this.#hosts.clear();
    await Promise.all([this.#agent.close(), ...hosts]);
  }
}
