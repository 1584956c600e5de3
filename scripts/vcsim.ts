// `npm run vcsim -- [flags]`: the embedded vCenter simulator in the foreground.
// Its first stdout line is a JSON object (url, username, password, caFile, controlUrl,
// inventory...); Ctrl-C stops it. Flags: see README, or `npm run vcsim -- -h`.
import { spawn } from "node:child_process";
import { ensureVcsim } from "../test/vcsim/build.mjs";

const binary = ensureVcsim();
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => child.kill(signal));
}
child.on("exit", (code, signal) => {
  process.exit(code ?? (signal ? 128 + 2 : 1));
});
