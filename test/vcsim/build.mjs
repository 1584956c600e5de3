// Builds the embedded simulator (test/vcsim/*.go) against Debian's govmomi, once per
// source change: the binary is cached under .cache/vcsim/<hash>/ (git-ignored).
// Plain JavaScript with no dependencies, so the bootstrap can run it before `npm ci`.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const VCSIM_SOURCE_DIR = dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = resolve(VCSIM_SOURCE_DIR, "..", "..");
const CACHE_DIR = join(PROJECT_ROOT, ".cache", "vcsim");

/** Where Debian's golang-github-vmware-govmomi-dev puts the library. */
export const GOPATH = process.env.VCSIM_GOPATH ?? "/usr/share/gocode";

export function goVersion() {
  try {
    return execFileSync("go", ["version"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

export function govmomiPresent() {
  return existsSync(join(GOPATH, "src", "github.com", "vmware", "govmomi", "simulator"));
}

function sourceHash(version) {
  const h = createHash("sha256");
  h.update(version);
  for (const name of readdirSync(VCSIM_SOURCE_DIR).filter((f) => f.endsWith(".go")).sort()) {
    h.update(name);
    h.update(readFileSync(join(VCSIM_SOURCE_DIR, name)));
  }
  return h.digest("hex").slice(0, 16);
}

/**
 * Returns the path of an up-to-date simulator binary, building it if the Go
 * sources (or the Go toolchain) changed. `VCSIM_BIN` names a prebuilt one instead.
 */
export function ensureVcsim({ quiet = false } = {}) {
  if (process.env.VCSIM_BIN) return process.env.VCSIM_BIN;
  const version = goVersion();
  if (!version) {
    throw new Error(
      "the Go toolchain is missing: install it with `apt-get install golang-go golang-github-vmware-govmomi-dev` (or run `npm run bootstrap` as root)",
    );
  }
  if (!govmomiPresent()) {
    throw new Error(
      `govmomi is missing under ${GOPATH}: install it with \`apt-get install golang-github-vmware-govmomi-dev\` (or set VCSIM_GOPATH)`,
    );
  }
  const hash = sourceHash(version);
  const binary = join(CACHE_DIR, hash, "vcsim");
  if (existsSync(binary)) return binary;

  const started = Date.now();
  if (!quiet) process.stderr.write(`building the embedded vCenter simulator (${version})...\n`);
  const tmpDir = join(CACHE_DIR, `${hash}.tmp-${process.pid}`);
  mkdirSync(tmpDir, { recursive: true });
  try {
    execFileSync("go", ["build", "-o", join(tmpDir, "vcsim"), "."], {
      cwd: VCSIM_SOURCE_DIR,
      env: {
        ...process.env,
        GO111MODULE: "off",
        GOPATH,
        GOFLAGS: "",
        GOCACHE: process.env.GOCACHE ?? join(PROJECT_ROOT, ".cache", "go-build"),
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    try {
      renameSync(tmpDir, join(CACHE_DIR, hash));
    } catch (err) {
      // Another process finished the same build first: theirs is as good as ours.
      if (!existsSync(binary)) throw err;
    }
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
  for (const old of readdirSync(CACHE_DIR)) {
    if (old !== hash && !old.includes(".tmp-")) rmSync(join(CACHE_DIR, old), { recursive: true, force: true });
  }
  if (!quiet) process.stderr.write(`built ${binary} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  return binary;
}
