// The committed vim25 field-order table is what the generator makes from the
// govmomi source on this machine: regenerate with `npm run gen:vim-types`.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GOPATH, PROJECT_ROOT, goVersion } from "../vcsim/build.mjs";

const TYPES_GO = join(GOPATH, "src", "github.com", "vmware", "govmomi", "vim25", "types", "types.go");

describe("provider/vsphere/soap/vim-types.ts", () => {
  it("is what scripts/gen-vim-types makes from govmomi's vim25 types", (ctx) => {
    if (!existsSync(TYPES_GO)) ctx.skip(`govmomi's vim25 types are not at ${TYPES_GO} (install golang-github-vmware-govmomi-dev, or set VCSIM_GOPATH)`);
    if (!goVersion()) ctx.skip("the Go toolchain is missing (apt-get install golang-go)");
    const generated = execFileSync(process.execPath, [join(PROJECT_ROOT, "scripts", "gen-vim-types.mjs"), "--stdout"], {
      cwd: PROJECT_ROOT,
      encoding: "utf8",
      maxBuffer: 16 * 1024 * 1024,
    });
    const committed = readFileSync(join(PROJECT_ROOT, "provider", "vsphere", "soap", "vim-types.ts"), "utf8");
    // toBe on 350 kB would print both; say which line differs instead.
    const a = generated.split("\n");
    const b = committed.split("\n");
    const first = a.findIndex((line, i) => line !== b[i]);
    expect(first === -1 && a.length === b.length ? "same" : `differs at line ${first + 1}: ${b[first]} != generated ${a[first]}`, "run `npm run gen:vim-types`").toBe("same");
  });
});
