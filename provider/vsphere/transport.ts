// HTTP(S) to vCenter: the undici dispatcher with the TLS policy (system CAs, a CA
// file, insecure, or a pinned thumbprint), the dispatcher of a host vCenter vouches
// for (an NFC lease's ESXi host), and what a failed request means for a retry.
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Agent, buildConnector } from "undici";
import { InvalidEndpointError, NotTlsError, TlsError } from "./errors.js";

export interface TlsOptions {
  /** PEM bundle of the CA(s) that sign the vCenter certificate (replaces the system CAs). */
  caFile?: string | undefined;
  /** Skip certificate verification (ignored when caFile or thumbprint is set). */
  insecure?: boolean | undefined;
  /** Pin the server certificate: SHA-1 (vSphere style, AB:CD:...) or SHA-256 fingerprint. */
  thumbprint?: string | undefined;
}

export interface DispatcherOptions extends TlsOptions {
  connectTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
  connections?: number;
}

/** Upper-case hex without separators. */
export function normalizeThumbprint(t: string): string {
  return t.replace(/[^0-9a-fA-F]/g, "").toUpperCase();
}

/** Builds the dispatcher; throws TlsError when caFile cannot be read. */
export function createDispatcher(opts: DispatcherOptions): Agent {
  const base = {
    connectTimeout: opts.connectTimeoutMs ?? 30_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    // Concurrent calls on one session, each on its own keep-alive connection: 20 instances
    // created at once make ~160 calls, and with 8 connections they queued for one (20
    // linked clones took 2.7x one at 50 ms per call; 1.3x with 32 — bench/instance.ts).
    connections: opts.connections ?? 32,
  };
  if (opts.thumbprint) {
    const want = thumbprintHex(opts.thumbprint, "thumbprint");
    // Pinning replaces CA verification: the connection is accepted only if the
    // certificate is exactly the pinned one. No TLS session resumption: a resumed
    // session shows no peer certificate to check.
    const connector = buildConnector({ rejectUnauthorized: false, timeout: base.connectTimeout, maxCachedSessions: 0 });
    return new Agent({
      ...base,
      connect: (options, callback) => {
        connector(options, (err, socket) => {
          if (err || !socket) return callback(err ?? new Error("no socket"), null);
          const cert = (socket as TLSSocket).getPeerCertificate?.();
          const got = normalizeThumbprint(want.length === 40 ? (cert?.fingerprint ?? "") : (cert?.fingerprint256 ?? ""));
          if (got !== want) {
            socket.destroy();
            return callback(
              new TlsError(
                "ThumbprintMismatch",
                `the certificate of ${options.hostname}:${options.port} has thumbprint ${formatThumbprint(got) || "(none)"}, ` +
                  `not the pinned ${formatThumbprint(want)}. If vCenter's certificate was replaced on purpose, pin the new thumbprint.`,
              ),
              null,
            );
          }
          callback(null, socket);
        });
      },
    });
  }
  if (opts.caFile) {
    let ca: Buffer;
    try {
      ca = readFileSync(opts.caFile);
    } catch (err) {
      throw new TlsError("TlsVerificationFailed", `caFile ${opts.caFile}: cannot read it (${(err as Error).message})`, err);
    }
    return new Agent({ ...base, connect: { ca } });
  }
  return new Agent({ ...base, connect: { rejectUnauthorized: !opts.insecure } });
}

/**
 * How a host other than vCenter is trusted: an ESXi host that an NFC lease names,
 * whose certificate vCenter vouches for by its SHA-1 (HttpNfcLeaseDeviceUrl.sslThumbprint).
 */
export interface HostTrust {
  /** The certificate's fingerprint as vCenter gave it: SHA-1 (AB:CD:...) or SHA-256. */
  thumbprint?: string | undefined;
  /** What the host is, for errors (e.g. "the ESXi host of NFC lease session[...]"). */
  label?: string | undefined;
}

/** Checks a thumbprint's shape; a malformed one is a TlsError naming where it came from. */
function thumbprintHex(t: string, from: string): string {
  const hex = normalizeThumbprint(t);
  if (hex.length !== 40 && hex.length !== 64) {
    throw new TlsError("ThumbprintMismatch", `${from} "${t}": want a SHA-1 (40 hex digits, e.g. AB:CD:...) or SHA-256 (64 hex digits) fingerprint`);
  }
  return hex;
}

/**
 * The dispatcher for one host that is not vCenter. Its certificate is accepted when a
 * CA verifies it (caFile, else the system's CAs; name included) or when it is the one
 * `trust.thumbprint` names (vCenter vouched for it), and refused otherwise: `insecure`
 * and a pinned vCenter thumbprint are vCenter's alone, so they never reach here.
 */
export function createHostDispatcher(trust: HostTrust, opts: DispatcherOptions): Agent {
  const want = trust.thumbprint ? thumbprintHex(trust.thumbprint, `the thumbprint given for ${trust.label ?? "the host"}`) : undefined;
  let ca: Buffer | undefined;
  if (opts.caFile) {
    try {
      ca = readFileSync(opts.caFile);
    } catch (err) {
      throw new TlsError("TlsVerificationFailed", `caFile ${opts.caFile}: cannot read it (${(err as Error).message})`, err);
    }
  }
  const timeout = opts.connectTimeoutMs ?? 30_000;
  // Verification is done here, after the handshake, so that either way of trusting
  // counts; no session resumption: a resumed session shows no certificate to check.
  const connector = buildConnector({ rejectUnauthorized: false, timeout, maxCachedSessions: 0, ...(ca ? { ca } : {}) });
  return new Agent({
    connectTimeout: timeout,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    connections: opts.connections ?? 8,
    connect: (options, callback) => {
      connector(options, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error("no socket"), null);
        if (options.protocol !== "https:") return callback(null, socket);
        const tls = socket as TLSSocket;
        if (tls.authorized) return callback(null, socket);
        const cert = tls.getPeerCertificate?.();
        const got = normalizeThumbprint(want?.length === 64 ? (cert?.fingerprint256 ?? "") : (cert?.fingerprint ?? ""));
        if (want !== undefined && got === want) return callback(null, socket);
        socket.destroy();
        callback(hostTrustError(trust, want, got, `${options.hostname}:${options.port}`, String(tls.authorizationError ?? "unverified"), opts.caFile), null);
      });
    },
  });
}

function hostTrustError(trust: HostTrust, want: string | undefined, got: string, address: string, reason: string, caFile: string | undefined): TlsError {
  const who = `${trust.label ?? "the host"} ${address}`;
  const cas = caFile ? `a CA in caFile ${caFile}` : "a CA this machine trusts";
  const seen = `its certificate has thumbprint ${formatThumbprint(got) || "(none)"} and is not signed by ${cas} (${reason})`;
  if (want !== undefined) {
    return new TlsError(
      "ThumbprintMismatch",
      `cannot trust ${who}: vCenter vouched for a certificate with thumbprint ${formatThumbprint(want)}, but ${seen}. ` +
        `The host's certificate changed since vCenter last saw it (reconnect the host in vCenter), or something else answers at that address.`,
    );
  }
  return new TlsError(
    "TlsVerificationFailed",
    `cannot trust ${who}: vCenter gave no thumbprint for it, and ${seen}. ` +
      `Add the CA that signs the ESXi hosts' certificates to caFile (insecure applies to vCenter only).`,
  );
}

export function formatThumbprint(hex: string): string {
  return (hex.match(/.{2}/g) ?? []).join(":");
}

/** Reads the server's certificate without verifying it, to say what it is in an error. */
export function probeCertificate(host: string, port: number, timeoutMs = 5000): Promise<{ sha1: string; subject: string; issuer: string } | undefined> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, servername: isIp(host) ? undefined : host });
    const done = (v: { sha1: string; subject: string; issuer: string } | undefined) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.once("error", () => done(undefined));
    socket.once("secureConnect", () => {
      const c = socket.getPeerCertificate();
      done(c?.fingerprint ? { sha1: c.fingerprint, subject: String(c.subject?.CN ?? ""), issuer: String(c.issuer?.CN ?? "") } : undefined);
    });
  });
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}

/** How a failed request bears on replaying it. */
export type FailureKind =
  /** The request never reached the server: any call may be retried. */
  | "notSent"
  /** The connection broke once the request may have been sent. */
  | "maybeSent"
  /** Certificate trouble, or no TLS at all: retrying will not help. */
  | "tls"
  /** Retrying will not help (unknown host, bad URL). */
  | "fatal";

const NOT_SENT = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "UND_ERR_CONNECT_TIMEOUT", "EADDRNOTAVAIL"]);
const MAYBE_SENT = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH",
]);
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|ERR_SSL/;
/** Errors no retry can fix: an unknown host, a URL or argument that cannot be right. */
const FATAL = new Set(["ENOTFOUND", "ERR_INVALID_URL", "EINVAL", "UND_ERR_INVALID_ARG", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_TYPE"]);

/** OpenSSL's answer when the peer sent something that is not a TLS record (plain HTTP). */
function isNotTls(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; depth < 4 && e; depth++, e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : "";
    if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version number|packet length too long|unknown protocol/i.test(message)) return true;
  }
  return false;
}

function codeOf(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return "";
}

export function classifyFailure(err: unknown): FailureKind {
  if (err instanceof TlsError || err instanceof NotTlsError) return "tls";
  const code = codeOf(err);
  if (TLS_CODE.test(code) || isNotTls(err)) return "tls";
  if (NOT_SENT.has(code)) return "notSent";
  if (MAYBE_SENT.has(code)) return "maybeSent";
  if (FATAL.has(code)) return "fatal";
  // Anything else from the socket layer: assume the worst for replay safety.
  return "maybeSent";
}

/** Turns a TLS handshake failure into an error that says how to fix it. */
export async function explainTlsFailure(err: unknown, host: string, port: number, tls: TlsOptions): Promise<TlsError | NotTlsError> {
  if (err instanceof TlsError || err instanceof NotTlsError) return err;
  if (isNotTls(err)) return new NotTlsError(host, port, err);
  const code = codeOf(err);
  const cert = await probeCertificate(host, port);
  const seen = cert ? ` Its certificate: CN=${cert.subject}, issued by ${cert.issuer}, SHA-1 thumbprint ${cert.sha1}.` : "";
  const how = tls.caFile
    ? `It is not signed by a CA in caFile ${tls.caFile}: point caFile at the bundle that signs vCenter's certificate, or pin the thumbprint.`
    : `It is not signed by a CA this machine trusts: set caFile to vCenter's CA bundle (${certificateBundleUrl(host, port)}), pin the thumbprint, or set insecure: true (not for production).`;
  const what = /ALTNAME/.test(code)
    ? `the certificate of ${host}:${port} is not valid for the name "${host}" (${code}). Connect by a name the certificate lists, or pin the thumbprint.`
    : /EXPIRED|NOT_YET_VALID/.test(code)
      ? `the certificate of ${host}:${port} is outside its validity period (${code}). Renew vCenter's certificate.`
      : `TLS verification of ${host}:${port} failed (${code}). ${how}`;
  return new TlsError("TlsVerificationFailed", what + seen, err);
}

/** Where vCenter serves its CA bundle; the port is kept unless it is 443. */
export function certificateBundleUrl(host: string, port: number): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `https://${h}${port === 443 ? "" : `:${port}`}/certs/download.zip`;
}

/** How an HTTP status that is not an answer bears on replaying the request. */
export function classifyStatus(status: number): "notSent" | "maybeSent" | undefined {
  // vCenter's reverse proxy says 503 (vpxd busy or down) or 429 before handing the
  // request on: nothing was done. 502 and 504 come after it was handed on, so the
  // request may or may not have been acted upon.
  if (status === 503 || status === 429) return "notSent";
  if (status === 502 || status === 504) return "maybeSent";
  return undefined;
}

const HOST_LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/**
 * Checks that `host` is a host name or an IP address (IPv6 with or without
 * brackets), and nothing more: a port, a scheme, a path or spaces make it an
 * InvalidEndpointError, at once.
 */
export function checkHost(host: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (isIP(bare) === 6) return bare;
  if (isIP(bare) === 4) return bare;
  const reason = /^[a-z][a-z0-9+.-]*:\/\//i.test(host)
    ? "a URL; want a host name or IP address only (the client adds https:// and /sdk)"
    : /^[^:\[\]]+:\d*$/.test(host) || /^\[.*\]:\d*$/.test(host)
      ? "a host with a port; want a host name or IP address only, and the port set apart"
      : /\s/.test(host)
        ? "contains spaces; want a host name or IP address"
        : host === "" || bare === ""
          ? "empty; want a host name or IP address"
          : host.length > 253 || !host.replace(/\.$/, "").split(".").every((l) => HOST_LABEL.test(l))
            ? "not a host name or IP address"
            : undefined;
  if (reason) throw new InvalidEndpointError(host, reason);
  return host;
}
