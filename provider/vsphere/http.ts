// The one HTTP channel to vCenter: one undici Agent (one connection pool) with the TLS
// policy of transport.ts, the session cookie, whole-answer exchanges for SOAP, and
// authenticated streaming requests for datastore (`/folder`) and NFC transfers.
import { setTimeout as sleep } from "node:timers/promises";
import { Readable } from "node:stream";
import { request as undiciRequest, type Agent, type Dispatcher } from "undici";
import { ConnectionError, HttpError, OutcomeUnknownError, VSphereError } from "./errors.js";
import { checkHost, classifyFailure, classifyStatus, createDispatcher, explainTlsFailure, type TlsOptions } from "./transport.js";

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

  constructor(readonly opts: ChannelOptions) {
    const host = checkHost(opts.host);
    this.#host = host;
    this.origin = `${opts.protocol}://${host.includes(":") ? `[${host}]` : host}:${opts.port}`;
    this.#agent = createDispatcher(opts);
    this.#agent.on("connect", () => {
      this.connections++;
    });
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
  async explain(err: unknown, method: string, attempt: number): Promise<VSphereError | undefined> {
    if (err instanceof VSphereError) return err;
    const kind = classifyFailure(err);
    if (kind === "tls") return explainTlsFailure(err, this.#host, this.opts.port, this.opts);
    if (kind === "fatal") return new ConnectionError(this.origin, method, attempt, err);
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
    for (let attempt = 1; ; attempt++) {
      let sent = 0;
      const body = this.#body(req, (n) => {
        sent += n;
        req.onProgress?.(sent, req.length);
      });
      let failure: unknown;
      let notSent = false;
      try {
        const res = await undiciRequest((req.origin ?? this.origin) + req.path, {
          method: req.method,
          dispatcher: this.#agent,
          headers: {
            ...(req.contentType ? { "content-type": req.contentType } : body !== undefined ? { "content-type": "application/octet-stream" } : {}),
            ...(req.length !== undefined ? { "content-length": String(req.length) } : {}),
            ...req.headers,
            // vCenter's session cookie goes to vCenter only: an NFC lease URL on an
            // ESXi host carries its own ticket.
            ...(this.#cookie && (req.origin === undefined || req.origin === this.origin) ? { cookie: this.#cookie } : {}),
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
        const error = new HttpError(this.origin, what, res.statusCode, text);
        if (kind === undefined) throw error;
        failure = error;
        notSent = kind === "notSent";
      } catch (err) {
        if (err instanceof HttpError && err === failure) throw err;
        const known = await this.explain(err, what, attempt);
        if (known) throw known;
        failure = err;
        notSent = classifyFailure(err) === "notSent";
      }
      const started = sent > 0 || (!notSent && req.body !== undefined);
      if (started) throw new OutcomeUnknownError(this.origin, what, failure);
      if (!replayable) throw new ConnectionError(this.origin, what, attempt, failure);
      if (attempt >= maxAttempts) throw new ConnectionError(this.origin, what, attempt, failure);
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

  close(): Promise<void> {
    return this.#agent.close();
  }
}
