// Regenerates provider/vsphere/soap/vim-types.ts from Debian's govmomi vim25 types
// (`npm run gen:vim-types`), with the Go program in scripts/gen-vim-types/.
// `--stdout` prints the table instead of writing it (the freshness test compares).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const GOPATH = process.env.VCSIM_GOPATH ?? "/usr/share/gocode";
const GOVMOMI = join(GOPATH, "src", "github.com", "vmware", "govmomi");
const OUT = join(ROOT, "provider", "vsphere", "soap", "vim-types.ts");

if (!existsSync(join(GOVMOMI, "vim25", "types", "types.go"))) {
  console.error(`gen-vim-types: no govmomi under ${GOPATH}: install it with \`apt-get install golang-github-vmware-govmomi-dev\` (or set VCSIM_GOPATH)`);
  process.exit(2);
}
const toStdout = process.argv.includes("--stdout");
execFileSync("go", ["run", "./scripts/gen-vim-types", "-govmomi", GOVMOMI, "-o", toStdout ? "-" : OUT], {
  cwd: ROOT,
  stdio: "inherit",
  env: { ...process.env, GO111MODULE: "off", GOPATH, GOCACHE: process.env.GOCACHE ?? join(ROOT, ".cache", "go-build") },
});
