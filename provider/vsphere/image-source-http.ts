// An image source on a web server, fetched with undici (not the vCenter channel: no
// session, no vCenter TLS policy). Redirects are followed by hand so the final URL is
// known and credentials never follow a redirect to another origin; statuses become the
// source errors a user can act on; a body that breaks off fails as a fetch error.
import { Readable } from "node:stream";
import { EnvHttpProxyAgent, request, type Dispatcher } from "undici";
import { ImageFormatError, MissingExtentError, SourceChangedError, SourceFetchError, SourceNotFoundError, UnsupportedImageError } from "./image-errors.js";
import { PREFIX_BYTES } from "./image-format.js";
import { SECTOR, type VmdkDescriptor } from "./vmdk.js";

/** Redirects followed before giving up (as curl's and browsers' limits, roughly). */
export const MAX_REDIRECTS = 10;
/** Headers that carry credentials: never sent to an origin the user did not name. */
const CREDENTIAL_HEADERS = /^(authorization|cookie|proxy-authorization)$/i;

export interface HttpTarget {
  url: string;
  headers: Record<string, string>;
  /** Names the source in messages (no credentials, no query values). */
  name: string;
  signal?: AbortSignal;
}

export interface HttpAnswer {
  /** After redirects. */
  url: string;
  /** The headers sent to `url` (credentials dropped if a redirect crossed origins). */
  headers: Record<string, string>;
  status: number;
  /** The whole resource's size: a Content-Range total, or a 200's Content-Length. */
  size: number | undefined;
  etag: string | undefined;
  lastModified: string | undefined;
  /** Offset in the resource of the body's first byte (a 206's range start, else 0). */
  start: number;
  body: Readable;
}

/** `https://user:pw@host/a?b=c` → `https://host/a?b=…`: what may be shown and logged. */
export function displayUrl(raw: string | URL): string {
  const u = new URL(raw);
  const keys = [...new Set(u.searchParams.keys())];
  return `${u.origin}${u.pathname}${keys.length ? `?${keys.map((k) => `${k}=…`).join("&")}` : ""}`;
}

/** The request target for a URL source: userinfo moves into a Basic Authorization header (undici takes none in the URL). */
export function httpTarget(source: string, headers: Record<string, string> = {}, signal?: AbortSignal): HttpTarget {
  const u = new URL(source);
  const out = { ...headers };
  if ((u.username || u.password) && !Object.keys(out).some((k) => k.toLowerCase() === "authorization")) {
    out.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}`;
  }
  u.username = "";
  u.password = "";
  u.hash = "";
  return { url: u.toString(), headers: out, name: displayUrl(u), ...(signal ? { signal } : {}) };
}

// Image servers are often reached through a proxy: HTTP_PROXY / HTTPS_PROXY / NO_PROXY
// (either case) are honoured, as curl does: http URLs forwarded through the proxy, https
// ones tunnelled (CONNECT). One dispatcher per distinct setting.
const PROXY_VARS = ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"];
let proxied: { key: string; dispatcher: Dispatcher } | undefined;
function dispatcher(): Dispatcher {
  const key = PROXY_VARS.map((v) => process.env[v] ?? "").join("\n");
  if (proxied?.key !== key) {
    void proxied?.dispatcher.close().catch(() => undefined);
    proxied = { key, dispatcher: new EnvHttpProxyAgent({ proxyTunnel: false }) };
  }
  return proxied.dispatcher;
}

const header = (h: Record<string, string | string[] | undefined>, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};
const int = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s.trim()) ? Number(s) : undefined);

/**
 * One request, redirects followed. `range` asks for bytes [start, end] (end inclusive,
 * open when absent); a server may answer 200 with the whole body (see `start`).
 */
export async function fetchSource(target: HttpTarget, opts: { method?: "GET" | "HEAD"; range?: { start: number; end?: number } } = {}): Promise<HttpAnswer> {
  let url = new URL(target.url);
  let headers = { ...target.headers };
  const method = opts.method ?? "GET";
  for (let hop = 0; ; hop++) {
    let res: Awaited<ReturnType<typeof request>>;
    try {
      res = await request(url, {
        method,
        dispatcher: dispatcher(),
        headers: { ...headers, ...(opts.range ? { range: `bytes=${opts.range.start}-${opts.range.end ?? ""}` } : {}) },
        ...(target.signal ? { signal: target.signal } : {}),
      });
    } catch (err) {
      if (target.signal?.aborted) throw err;
      throw new SourceFetchError(target.name, `could not ${method} ${displayUrl(url)}: ${(err as Error).message}`, undefined, undefined, { cause: err });
    }
    const { statusCode: status } = res;
    const location = header(res.headers, "location");
    if (status >= 300 && status < 400 && location !== undefined) {
      await res.body.dump().catch(() => undefined);
      if (hop >= MAX_REDIRECTS) throw new SourceFetchError(target.name, `more than ${MAX_REDIRECTS} redirects (the last to ${displayUrl(new URL(location, url))})`, status);
      const next = new URL(location, url);
      if (next.protocol !== "http:" && next.protocol !== "https:") throw new SourceFetchError(target.name, `a redirect to ${next.protocol} (only http and https are followed)`, status);
      if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.test(k)));
      url = next;
      continue;
    }
    if (status === 416 && opts.range) {
      // A range past the end: only an empty resource makes the first range unsatisfiable.
      await res.body.dump().catch(() => undefined);
      const total = int(/^bytes \*\/(\d+)$/.exec(header(res.headers, "content-range") ?? "")?.[1]);
      if (total === 0 && opts.range.start === 0) return answer(url, headers, 200, res.headers, Readable.from([]), 0);
      throw new SourceFetchError(target.name, `HTTP 416: the server has no bytes from ${opts.range.start} (size ${total ?? "unknown"})`, status);
    }
    if (status >= 400 || (status >= 300 && status < 400)) {
      const text = (await res.body.text().catch(() => "")).trim().slice(0, 200);
      throw statusError(target.name, status, text);
    }
    let size: number | undefined;
    let start = 0;
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers, "content-range") ?? "");
      if (!m) {
        res.body.destroy();
        throw new SourceFetchError(target.name, `HTTP 206 without a usable Content-Range (${header(res.headers, "content-range") ?? "none"})`, status);
      }
      start = Number(m[1]);
      size = m[3] === "*" ? undefined : Number(m[3]);
    } else {
      size = int(header(res.headers, "content-length"));
    }
    return answer(url, headers, status, res.headers, res.body, size, start);
  }
}

function answer(url: URL, headers: Record<string, string>, status: number, h: Record<string, string | string[] | undefined>, body: Readable, size: number | undefined, start = 0): HttpAnswer {
  // undici fails a body destroyed before its end with an "aborted" error event: a reader
  // gets its own errors, but a body dropped on purpose must not crash the process.
  body.on("error", () => {});
  return { url: url.toString(), headers, status, size, etag: header(h, "etag"), lastModified: header(h, "last-modified"), start, body };
}

export function statusError(name: string, status: number, text: string): Error {
  const said = text ? ` (${text})` : "";
  if (status === 404 || status === 410) return new SourceNotFoundError(name, `HTTP ${status}: there is no file at this URL${said}`);
  if (status === 401 || status === 403) {
    return new SourceFetchError(name, `HTTP ${status}: the server refused access${said}`, status, "If the image needs credentials, give them in the Image's `headers` input (e.g. { Authorization: \"Bearer …\" }); they are sent to this server only.");
  }
  return new SourceFetchError(name, `HTTP ${status}${said}`, status);
}

/**
 * A response's body as chunks; a connection that breaks off is a SourceFetchError saying
 * how far it got. Ending or abandoning the iteration destroys the body (undici then
 * closes the socket rather than reading the rest).
 */
export async function* bodyChunks(name: string, a: HttpAnswer): AsyncGenerator<Buffer> {
  let got = 0;
  const expected = a.status === 206 ? undefined : a.size;
  try {
    for await (const chunk of a.body as AsyncIterable<Buffer>) {
      got += chunk.length;
      yield chunk;
    }
  } catch (err) {
    if (err instanceof SourceFetchError) throw err;
    throw new SourceFetchError(name, `the download broke off after ${got}${expected !== undefined ? ` of ${expected}` : ""} bytes: ${(err as Error).message}`, a.status, undefined, { cause: err });
  } finally {
    a.body.destroy();
  }
}

/**
 * Bytes [start, end] of a resource (to its end when `end` is absent): a Range request,
 * and a 200 answer skipped up to `start`. `expect` is the resource's ETag / Last-Modified
 * as seen before: a different one means the bytes are another file's.
 */
export async function* rangeBytes(target: HttpTarget, start: number, end: number | undefined, expect: { etag?: string | undefined; lastModified?: string | undefined } = {}): AsyncGenerator<Buffer> {
  if (end !== undefined && end < start) return;
  const a = await fetchSource(target, { range: { start, ...(end !== undefined ? { end } : {}) } });
  if ((expect.etag && a.etag && expect.etag !== a.etag) || (expect.lastModified && a.lastModified && expect.lastModified !== a.lastModified)) {
    a.body.destroy();
    throw new SourceChangedError(target.name, [expect.etag !== a.etag ? `ETag ${expect.etag} → ${a.etag}` : `Last-Modified ${expect.lastModified} → ${a.lastModified}`]);
  }
  let pos = a.start;
  for await (const chunk of bodyChunks(target.name, a)) {
    let c = chunk;
    if (pos < start) c = c.subarray(Math.min(c.length, start - pos));
    pos += chunk.length;
    if (end !== undefined && pos > end + 1) c = c.subarray(0, Math.max(0, c.length - (pos - (end + 1))));
    if (c.length) yield c;
    if (end !== undefined && pos > end) return;
  }
}

/**
 * The first bytes for detection: one GET with `Range: bytes=0-65535`. Reading on past
 * them (an OVA whose .ovf is long) continues with one more request from where the first
 * ended; a server that ignored the range is simply read on.
 */
export async function prefixSource(target: HttpTarget): Promise<{ answer: HttpAnswer; bytes: AsyncGenerator<Buffer> }> {
  const a = await fetchSource(target, { range: { start: 0, end: PREFIX_BYTES - 1 } });
  async function* bytes(): AsyncGenerator<Buffer> {
    let got = 0;
    for await (const chunk of bodyChunks(target.name, a)) {
      got += chunk.length;
      yield chunk;
    }
    if (a.status === 206 && (a.size === undefined || got < a.size)) {
      yield* rangeBytes({ ...target, url: a.url, headers: a.headers }, got, undefined, { etag: a.etag, lastModified: a.lastModified });
    }
  }
  return { answer: a, bytes: bytes() };
}

/** A flat extent of a descriptor on a web server: a URL beside the descriptor's. */
export interface UrlExtent {
  fileName: string;
  url: string;
  offsetBytes: number;
  lengthBytes: number;
  /** The extent file's size (HEAD). */
  size: number | undefined;
  /** Its validators then, so a later read can tell it is the same file. */
  etag: string | undefined;
  lastModified: string | undefined;
}

/**
 * A URL descriptor's extents, resolved beside it and sized by HEAD. The same rules as a
 * local descriptor's (resolveExtents): flat extents only, plain file names.
 */
export async function urlExtents(descriptor: VmdkDescriptor, base: Pick<HttpAnswer, "url" | "headers">, target: HttpTarget): Promise<UrlExtent[]> {
  const out: UrlExtent[] = [];
  const missing: string[] = [];
  for (const e of descriptor.extents) {
    if (e.type !== "FLAT" && e.type !== "VMFS") {
      throw new UnsupportedImageError(target.name, `a descriptor with a ${e.type} extent`, "Only flat extents can be uploaded from a descriptor; convert the disk to one file with qemu-img.");
    }
    const fileName = e.fileName ?? "";
    if (fileName === "" || /[/\\]/.test(fileName) || fileName === "." || fileName === "..") {
      throw new UnsupportedImageError(target.name, `a descriptor whose extent is ${JSON.stringify(fileName)}`, "Extents must be files beside the descriptor, named without a folder.");
    }
    const url = new URL(encodeURIComponent(fileName), base.url).toString();
    const head = await fetchSource({ ...target, url, headers: base.headers }, { method: "HEAD" }).catch((err: unknown) => {
      if (err instanceof SourceNotFoundError) return undefined;
      throw err;
    });
    head?.body.destroy();
    if (!head) {
      missing.push(fileName);
      continue;
    }
    const offsetBytes = e.offsetSectors * SECTOR;
    const lengthBytes = e.sizeSectors * SECTOR;
    if (head.size !== undefined && head.size < offsetBytes + lengthBytes) {
      throw new ImageFormatError(target.name, "truncated", `extent "${fileName}" of at least ${offsetBytes + lengthBytes} bytes`, `${head.size} bytes`);
    }
    out.push({ fileName, url, offsetBytes, lengthBytes, size: head.size, etag: head.etag, lastModified: head.lastModified });
  }
  if (missing.length) throw new MissingExtentError(target.name, missing, displayUrl(new URL(".", base.url)));
  return out;
}
