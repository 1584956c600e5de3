#!/usr/bin/env node
// Makes a fresh clone ready: system packages (Debian), npm dependencies, and the
// embedded simulator. Runs before `npm test`, `npm run demo` and friends, so a
// newcomer needs nothing else. Idempotent and quick when all is in place.
//
//   node scripts/bootstrap.mjs           everything
//   node scripts/bootstrap.mjs --deps    npm dependencies only
//   --quiet                              say nothing when nothing is to be done
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_ROOT, ensureVcsim, goVersion, govmomiPresent } from "../test/vcsim/build.mjs";

const args = new Set(process.argv.slice(2));
const depsOnly = args.has("--deps");
const quiet = args.has("--quiet");
const say = (msg) => quiet || process.stderr.write(`bootstrap: ${msg}\n`);

/** Debian packages the suite needs: the simulator's build, and real VMDK tools. */
const APT_PACKAGES = {
  "golang-go": () => goVersion() !== undefined,
  "golang-github-vmware-govmomi-dev": govmomiPresent,
  "qemu-utils": () => onPath("qemu-img"),
  "libvmdk-utils": () => onPath("vmdkinfo"),
  // An independent vim25 client: a harness test proves the simulator's schema-order
  // check accepts what it sends, and the benchmarks measure us against it.
  "python3-pyvmomi": () => spawnSync("/usr/bin/python3", ["-c", "import pyVmomi"], { stdio: "ignore" }).status === 0,
};

function onPath(cmd) {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

function ensureAptPackages() {
  const missing = Object.entries(APT_PACKAGES)
    .filter(([, present]) => !present())
    .map(([name]) => name);
  if (missing.length === 0) return;
  const cmd = `apt-get install -y ${missing.join(" ")}`;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot || !onPath("apt-get")) {
    console.error(`bootstrap: missing system packages: ${missing.join(", ")}\n  install them with: sudo ${cmd}`);
    process.exit(1);
  }
  say(`installing ${missing.join(", ")} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  execFileSync("apt-get", ["install", "-y", "-qq", ...missing], { stdio: "inherit", env });
}

function ensureNodeDeps() {
  const lock = join(PROJECT_ROOT, "package-lock.json");
  const installed = join(PROJECT_ROOT, "node_modules", ".package-lock.json");
  const fresh = existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs;
  if (fresh) return;
  say("installing npm dependencies (npm ci)");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: PROJECT_ROOT, stdio: "inherit" });
}

try {
  if (!depsOnly) ensureAptPackages();
  ensureNodeDeps();
  if (!depsOnly) ensureVcsim({ quiet });
} catch (err) {
  console.error(`bootstrap: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
