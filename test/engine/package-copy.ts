// A second, private build of this package, installed in a throw-away program folder
// (test infrastructure): for tests that compare what two builds produce without
// touching dist/, which other test files may be loading at the same time.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { PROJECT_ROOT } from "../vcsim/build.mjs";

export interface PackageCopy {
  /** The program folder: node_modules/pulumi-vmware-vcenter is the fresh build. */
  dir: string;
  /** The copied program, relative to `dir`. */
  program: string;
  cleanup(): void;
}

/** Builds the package with tsup into a new folder and sets a copy of `program` (relative to the project) beside it. */
export function buildPackageCopy(program: string): PackageCopy {
  const dir = mkdtempSync(join(tmpdir(), "package-copy-"));
  const modules = join(dir, "node_modules");
  const pkg = join(modules, "pulumi-vmware-vcenter");
  mkdirSync(pkg, { recursive: true });
  copyFileSync(join(PROJECT_ROOT, "package.json"), join(pkg, "package.json"));
  execFileSync(join(PROJECT_ROOT, "node_modules", ".bin", "tsup"), ["--silent", "--out-dir", join(pkg, "dist")], { cwd: PROJECT_ROOT, stdio: "ignore" });
  // Every other dependency is the project's own (one @pulumi/pulumi for program, harness and provider).
  for (const entry of readdirSync(join(PROJECT_ROOT, "node_modules"))) {
    if (entry === "pulumi-vmware-vcenter" || entry === ".bin" || entry.startsWith(".")) continue;
    symlinkSync(join(PROJECT_ROOT, "node_modules", entry), join(modules, entry));
  }
  writeFileSync(join(dir, "package.json"), `${JSON.stringify({ name: "package-copy", private: true })}\n`);
  mkdirSync(join(dir, "programs"));
  const copied = join("programs", basename(program));
  copyFileSync(join(PROJECT_ROOT, program), join(dir, copied));
  return { dir, program: copied, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
