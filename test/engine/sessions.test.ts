// Sessions: each operation's provider process logs out what it opened when the
// engine ends it (gRPC closed, SIGINT to its process group, SIGKILL after 5 s), so a
// series of operations leaves vCenter with no more sessions than before.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, type HarnessResult , simulatorStack } from "./index.js";
import { ENGINE_GRACE_MS } from "./provider-process.js";

const PASSWORD = "pw-Sessions-3c1";
let sim: Vcsim;
let dir: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 3, vms: 0, password: PASSWORD });
  dir = mkdtempSync(join(tmpdir(), "sessions-"));
});
afterAll(async () => {
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function stack(name: string, config: Record<string, string> = {}): HarnessStack {
  return simulatorStack(sim, { dir, name, password: PASSWORD, config: { "pgtest:name": `pg-${name}`, ...config } });
}

describe("sessions", () => {
  it("are all logged out after up, preview, refresh, up and destroy: none left behind", async () => {
    const s = stack("series");
    const live = await sim.control.liveSessions();
    await sim.control.resetStats();
    const steps: Array<[string, () => Promise<HarnessResult>]> = [
      ["up", () => s.up()],
      ["preview", () => s.preview({ ...s.opts.config, "pgtest:vlanId": "101" })],
      ["refresh", () => s.refresh()],
      ["up (change)", () => s.up({ ...s.opts.config, "pgtest:vlanId": "101" })],
      ["destroy", () => s.destroy()],
    ];
    for (const [step, run] of steps) {
      const res = await run();
      expect(res.errors, step).toEqual([]);
      // Ended by the SIGINT, by itself, after a clean logout: not by the SIGKILL.
      expect(res.provider, step).toMatchObject({ how: "exited", code: 0, signal: null });
      expect(await sim.control.liveSessions(), step).toBe(live);
    }
    const stats = await sim.control.stats();
    expect(stats.methods.Login).toBe(steps.length);
    expect(stats.methods.Logout).toBe(steps.length);
  });

  it("exits by itself on SIGINT well within the engine's 5 s, even when vCenter does not answer the logout", async () => {
    const s = stack("hung-logout");
    await sim.control.addRule({ kind: "delay", method: "Logout", ms: 20_000, times: -1 });
    try {
      const res = await s.preview();
      expect(res.errors).toEqual([]);
      // The logout got no answer in time: the process says so with its exit code,
      // but still leaves on its own, long before the SIGKILL would come.
      expect(res.provider).toMatchObject({ how: "exited", code: 1, signal: null });
      expect(res.provider!.ms).toBeLessThan(ENGINE_GRACE_MS / 2);
    } finally {
      await sim.control.clearRules();
    }
  });
});
