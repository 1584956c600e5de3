// A test HTTP file server over a folder, with the behaviours an image source meets on the
// web: Content-Length, ETag, Last-Modified, single byte ranges, redirects (to itself or
// another origin), a route behind an Authorization header, a connection dropped after N
// bytes, a 500, and a server that ignores Range. Every request is recorded (headers, and
// when its socket closed) so tests can assert what was sent and that nothing was left open.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";

export interface RecordedRequest {
  method: string;
  path: string;
  /** The request target as sent: absolute ("http://host/…") when it came through as a proxy request. */
  target: string;
  headers: IncomingHttpHeaders;
  /** Settles when the request's connection closes. */
  socketClosed: Promise<void>;
}

/**
 * Routes (file names are plain names in `dir`):
 *   /files/<name>            the file (GET, HEAD; Range: bytes=a-b | a- | -n)
 *   /norange/<name>          the file, Range ignored (always 200)
 *   /redirect/<n>/<rest>     302 to /redirect/<n-1>/<rest>, and /redirect/0/<rest> to /<rest>
 *   /to?url=<absolute URL>   302 to that URL (another origin)
 *   /auth/<name>             the file when `Authorization` is `authorization`, else 401
 *   /drop/<bytes>/<name>     headers for the whole file, then <bytes> of it, then the socket is destroyed
 *   /error/<status>          that status, a short text body
 */
export class HttpSource {
  readonly requests: RecordedRequest[] = [];
  private constructor(
    private readonly server: Server,
    readonly dir: string,
    readonly authorization: string,
  ) {}

  static async start(dir: string, opts: { authorization?: string } = {}): Promise<HttpSource> {
    const server = createServer();
    const source = new HttpSource(server, dir, opts.authorization ?? "Bearer s3cret");
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      source.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500).end(String(err));
        else res.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return source;
  }

  get origin(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  url(path: string): string {
    return `${this.origin}${path.startsWith("/") ? path : `/${path}`}`;
  }

  /** Requests whose path starts with `prefix`. */
  requestsTo(prefix: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.startsWith(prefix));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.server.close((err) => (err ? reject(err) : resolve())));
  }

  // One promise per connection: a kept-alive socket serves many requests.
  private readonly closes = new WeakMap<Socket, Promise<void>>();
  private closedOf(socket: Socket): Promise<void> {
    let p = this.closes.get(socket);
    if (!p) this.closes.set(socket, (p = socket.destroyed ? Promise.resolve() : new Promise((resolve) => socket.once("close", () => resolve()))));
    return p;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.origin);
    const socket = req.socket;
    this.requests.push({
      method: req.method ?? "GET",
      path: url.pathname + url.search,
      target: req.url ?? "/",
      headers: req.headers,
      socketClosed: this.closedOf(socket),
    });
    const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
    const [route, ...rest] = parts;
    switch (route) {
      case "files":
        return this.serveFile(req, res, rest.join("/"), { range: true });
      case "norange":
        return this.serveFile(req, res, rest.join("/"), { range: false });
      case "redirect": {
        const n = Number(rest[0]);
        const target = n > 0 ? `/redirect/${n - 1}/${rest.slice(1).join("/")}` : `/${rest.slice(1).join("/")}`;
        res.writeHead(302, { location: target }).end();
        return;
      }
      case "to":
        res.writeHead(302, { location: url.searchParams.get("url") ?? "/" }).end();
        return;
      case "auth":
        if (req.headers.authorization !== this.authorization) {
          res.writeHead(401, { "www-authenticate": 'Bearer realm="images"' }).end("unauthorized");
          return;
        }
        return this.serveFile(req, res, rest.join("/"), { range: true });
      case "drop":
        return this.serveFile(req, res, rest.slice(1).join("/"), { range: false, dropAfter: Number(rest[0]) });
      case "error":
        res.writeHead(Number(rest[0]) || 500).end("something went wrong");
        return;
      default:
        res.writeHead(404).end("no such route");
    }
  }

  private async serveFile(req: IncomingMessage, res: ServerResponse, name: string, opts: { range: boolean; dropAfter?: number }): Promise<void> {
    if (name === "" || name.includes("/") || name === "..") {
      res.writeHead(400).end("bad name");
      return;
    }
    const path = join(this.dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    const common = {
      etag: `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
      "last-modified": st.mtime.toUTCString(),
      "accept-ranges": opts.range ? "bytes" : "none",
      "content-type": "application/octet-stream",
    };
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const range = opts.range ? req.headers.range : undefined;
    if (range) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (!m || (m[1] === "" && m[2] === "")) {
        res.writeHead(400).end("bad range");
        return;
      }
      if (m[1] === "") start = Math.max(0, st.size - Number(m[2]));
      else {
        start = Number(m[1]);
        if (m[2] !== "") end = Math.min(end, Number(m[2]));
      }
      if (start >= st.size) {
        res.writeHead(416, { ...common, "content-range": `bytes */${st.size}` }).end();
        return;
      }
      status = 206;
    }
    const length = Math.max(0, end - start + 1);
    res.writeHead(status, {
      ...common,
      "content-length": String(length),
      ...(status === 206 ? { "content-range": `bytes ${start}-${end}/${st.size}` } : {}),
    });
    if (req.method === "HEAD" || length === 0) {
      res.end();
      return;
    }
    const stop = opts.dropAfter !== undefined ? Math.min(end, start + opts.dropAfter - 1) : end;
    const file = createReadStream(path, { start, end: stop });
    file.on("error", () => res.destroy());
    res.on("close", () => file.destroy());
    if (opts.dropAfter === undefined) {
      file.pipe(res);
      return;
    }
    // Write the first bytes, and once they are on the wire, cut the connection mid-body.
    const chunks: Buffer[] = [];
    file.on("data", (chunk) => chunks.push(Buffer.from(chunk)));
    file.on("end", () => res.write(Buffer.concat(chunks), () => res.socket?.destroy()));
  }
}
