// The handler module the dynamic-provider process loads: configuration and session.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidCredentialsError, closeSessions, configure, handle } from "../../provider/handler.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { simulatorConfig } from "./index.js";

let sim: Vcsim;
beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 2 });
});
afterAll(() => sim?.stop());

const request = (values: Record<string, string>) => ({ config: { get: (key: string) => values[key] } });

describe("handler", () => {
  it("keeps one session for every provider configured with the same stack config, and a new one for another", async () => {
    const values = simulatorConfig(sim);
    await sim.control.resetStats();
    await configure(request(values));
    await handle("PortGroup", "check", {}, { name: "pg-a", vlanId: 1 });
    await configure(request({ ...values })); // a second provider object, same config
    await handle("PortGroup", "check", {}, { name: "pg-b", vlanId: 2 });
    expect((await sim.control.stats()).methods.Login).toBe(1);

    await configure(request({ ...values, "vmware:apiRetryCount": "3" }));
    await handle("PortGroup", "check", {}, { name: "pg-c", vlanId: 3 });
    const stats = await sim.control.stats();
    expect(stats.methods.Login).toBe(2);
    expect(stats.methods.Logout).toBe(1); // the first session, closed
  });

  it("reports a bad stack configuration on first use, naming the key", async () => {
    await configure(request({ "vmware:hostIp": sim.info.host, "vmware:hostPort": "99999" }));
    await expect(handle("PortGroup", "check", {}, { name: "x" })).rejects.toThrow(/vmware:hostPort = "99999": want a whole number from 1 to 65535/);
  });

  it("refuses a host with a port in vmware:hostIp at once, without touching the network", async () => {
    await configure(request({ "vmware:hostIp": `${sim.info.host}:${sim.info.port}`, "vmware:hostUsername": "u", "vmware:hostPassword": "p" }));
    const started = Date.now();
    await expect(handle("PortGroup", "check", {}, { name: "x" })).rejects.toThrow(
      `vmware:hostIp = "${sim.info.host}:${sim.info.port}": want a host name or IP address; put the port in vmware:hostPort`,
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("says which settings to fix when vCenter refuses the password", async () => {
    const values = simulatorConfig(sim, "wrong-Pw-42");
    await configure(request(values));
    const err = await handle("PortGroup", "check", {}, { name: "pg-x", vlanId: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidCredentialsError);
    expect((err as InvalidCredentialsError).code).toBe("InvalidCredentials");
    expect((err as Error).message).toContain(`vCenter ${sim.info.host}:${sim.info.port} refused the login of "${sim.info.username}"`);
    expect((err as Error).message).toContain("Fix vmware:hostUsername or vmware:hostPassword");
    expect((err as Error).message).not.toContain("wrong-Pw-42");
  });

  it("logs out every session it opened when asked to close them (as on SIGINT)", async () => {
    await configure(request({ ...simulatorConfig(sim), "vmware:maximumObjects": "50" }));
    await sim.control.resetStats();
    await handle("PortGroup", "check", {}, { name: "pg-close", vlanId: 1 });
    expect(await closeSessions()).toBe(true);
    const stats = await sim.control.stats();
    expect(stats.methods.Login).toBe(1);
    expect(stats.methods.Logout).toBe(1);
    // The next call opens a new session (the provider goes on if the engine keeps it).
    await handle("PortGroup", "check", {}, { name: "pg-close", vlanId: 1 });
    expect((await sim.control.stats()).methods.Login).toBe(2);
    expect(await closeSessions()).toBe(true);
  });

  it("refuses an unknown resource kind clearly", async () => {
    await expect(handle("Nope", "check", {}, {})).rejects.toThrow(/unknown resource kind Nope .*knows PortGroup/);
  });
});
