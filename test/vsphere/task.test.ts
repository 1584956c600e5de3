// Task waiting: results, typed task faults, polling vs WaitForUpdatesEx, timeouts.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { DuplicateNameFault, FileNotFoundFault, OutcomeUnknownError, TaskTimeoutError } from "../../provider/vsphere/errors.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { moRef, str } from "../../provider/vsphere/schema.js";
import { runTask, runTaskReading, waitForTask, type TaskWaitStrategy } from "../../provider/vsphere/task.js";
import type { MoRef } from "../../provider/vsphere/soap/xml.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let client: VimClient;
let vms: MoRef[];
let datacenter: MoRef;

beforeAll(async () => {
  sim = await startVcsim({ hosts: 2, vms: 6 });
  client = await VimClient.connect(simOptions(sim, { taskPollIntervalMs: 100 }));
  const pc = new PropertyCollector(client);
  vms = (await pc.find(client.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }))).map((v) => v.obj);
  datacenter = (await pc.find(client.serviceContent.rootFolder, "Datacenter", z.object({ name: str })))[0]!.obj;
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});
afterEach(() => sim.control.clearRules());

/** Round trips by method during `fn`. */
async function count(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = { ...client.stats.byMethod };
  await fn();
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(client.stats.byMethod)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

describe("tasks", () => {
  it("runs a task and returns its result", async () => {
    const name = `folder-by-task-${Date.now()}`;
    const [vm] = vms;
    await runTask(client, "Rename_Task", vm!, { newName: name });
    expect((await new PropertyCollector(client).get(vm!, z.object({ name: str }))).name).toBe(name);
  });

  it("returns the object checkApplied found when a *_Task answer was lost, without waiting on it as a task", async () => {
    const { vmFolder } = await new PropertyCollector(client).get(datacenter, z.object({ vmFolder: moRef }));
    const clone = (name: string) => ({ folder: vmFolder, name, spec: { location: {}, powerOn: false, template: false } });
    const find = async (name: string) => {
      const found = await client.invoke("FindChild", client.serviceContent.searchIndex!, { entity: vmFolder, name });
      return found === undefined ? undefined : moRef.parse(found);
    };

    const lost = `clone-lost-${Date.now()}`;
    await sim.control.addRule({ kind: "reset", method: "CloneVM_Task", phase: "after" });
    await expect(runTask(client, "CloneVM_Task", vms[0]!, clone(lost))).rejects.toBeInstanceOf(OutcomeUnknownError);

    const name = `clone-recovered-${Date.now()}`;
    await sim.control.addRule({ kind: "reset", method: "CloneVM_Task", phase: "after" });
    let result: unknown;
    const counts = await count(async () => {
      result = await runTask(client, "CloneVM_Task", vms[0]!, clone(name), {
        checkApplied: async () => {
          const vm = await find(name);
          return vm ? { applied: true, value: vm } : { applied: false };
        },
      });
    });
    expect(result).toEqual(await find(name));
    expect(moRef.parse(result).type).toBe("VirtualMachine");
    // One clone call, one look-up, and no task wait on the VM as if it were a task.
    expect(counts).toEqual({ CloneVM_Task: 1, FindChild: 1 });
  });

  it("turns a failed task into the typed fault, carrying the task", async () => {
    const err = (await runTask(client, "DeleteDatastoreFile_Task", client.serviceContent.fileManager!, {
      name: "[LocalDS_0] no/such/file.vmdk",
      datacenter,
    }).catch((e: unknown) => e)) as FileNotFoundFault;
    expect(err).toBeInstanceOf(FileNotFoundFault);
    expect(err.task?.task.type).toBe("Task");
    expect(err.method).toBe(err.task?.name);
    expect(err.message).toMatch(/^task .*DeleteDatastoreFile.* failed: FileNotFound/);
  });

  it("reports an injected task fault with its message and fields", async () => {
    await sim.control.addRule({ kind: "taskError", method: "Rename_Task", fault: "DuplicateName", message: "name in use", fields: { name: "web-1" } });
    const err = (await runTask(client, "Rename_Task", vms[1]!, { newName: "x" }).catch((e: unknown) => e)) as DuplicateNameFault;
    expect(err).toBeInstanceOf(DuplicateNameFault);
    expect(err.duplicateName).toBe("web-1");
    expect(err.serverMessage).toBe("name in use");
    expect(err.task?.name).toBe("Rename_Task");
  });

  it.each<[TaskWaitStrategy, (c: Record<string, number>) => void]>([
    [
      "poll",
      (c) => {
        expect(c.RetrievePropertiesEx).toBeGreaterThanOrEqual(3);
        expect(c.WaitForUpdatesEx).toBeUndefined();
      },
    ],
    [
      "updates",
      (c) => {
        expect(c.RetrievePropertiesEx).toBeUndefined();
        expect(c).toMatchObject({ CreatePropertyCollector: 1, CreateFilter: 1, DestroyPropertyCollector: 1 });
        expect(c.WaitForUpdatesEx).toBeGreaterThanOrEqual(2);
      },
    ],
    [
      "auto",
      (c) => {
        expect(c.RetrievePropertiesEx).toBe(1);
        expect(c).toMatchObject({ CreatePropertyCollector: 1, CreateFilter: 1, DestroyPropertyCollector: 1 });
      },
    ],
  ])("waits for a long task with strategy %s, reporting progress", async (strategy, check) => {
    await sim.control.addRule({ kind: "taskDelay", method: "PowerOffVM_Task", ms: 600 });
    const vm = vms[2 + ["poll", "updates", "auto"].indexOf(strategy)]!;
    const progress: number[] = [];
    let task: MoRef | undefined;
    const counts = await count(async () => {
      task = moRef.parse(await client.invoke("PowerOffVM_Task", vm));
      await waitForTask(client, task, { strategy, onProgress: (p) => progress.push(p) });
    });
    check(counts);
    // The harness shows 50 % half-way; vcsim leaves a 0 out of its answers.
    expect(progress).toContain(50);
    expect(progress.at(-1)).toBe(100);
    const state = await new PropertyCollector(client).get(vm, z.object({ "runtime.powerState": str }));
    expect(state["runtime.powerState"]).toBe("poweredOff");
  });

  it("watches only the task's end, not its progress, when nobody asked for progress", async () => {
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 600 });
    const counts = await count(() => runTask(client, "Rename_Task", vms[0]!, { newName: `no-progress-${Date.now()}` }, { strategy: "updates" }));
    // The harness moves progress to 50 half-way: that must not wake the wait.
    expect(counts.WaitForUpdatesEx).toBe(2);
  });

  it("finishes a short task in one round trip with auto", async () => {
    const counts = await count(() => runTask(client, "Rename_Task", vms[0]!, { newName: `quick-${Date.now()}` }));
    expect(counts).toEqual({ Rename_Task: 1, RetrievePropertiesEx: 1 });
  });

  it.each<TaskWaitStrategy>(["poll", "updates"])("gives up waiting at the timeout (%s), saying the task may go on", async (strategy) => {
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 3000 });
    const task = moRef.parse(await client.invoke("Rename_Task", vms[0]!, { newName: `slow-${strategy}` }));
    const err = (await waitForTask(client, task, { strategy, timeoutMs: 300 }).catch((e: unknown) => e)) as TaskTimeoutError;
    expect(err).toBeInstanceOf(TaskTimeoutError);
    expect(err.code).toBe("TaskTimeout");
    expect(err.message).toMatch(/may still be running/);
  });

  it("keeps waiting by polling when the session expires during WaitForUpdatesEx", async () => {
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 800 });
    await sim.control.addRule({ kind: "expireSessions", method: "WaitForUpdatesEx", nth: 2 });
    const relogins = client.stats.relogins;
    const name = `renamed-across-expiry-${Date.now()}`;
    await runTask(client, "Rename_Task", vms[1]!, { newName: name }, { strategy: "updates" });
    expect(client.stats.relogins).toBe(relogins + 1);
    expect((await new PropertyCollector(client).get(vms[1]!, z.object({ name: str }))).name).toBe(name);
  });

  it("runTaskReading: a task done at once and a read beside it in one call; a task still running leaves the read to the caller", async () => {
    const [vm] = vms;
    const nameOf = () => ({ propSet: [{ type: "VirtualMachine", pathSet: ["name"] }], objectSet: [{ obj: vm! }] });
    let quick: Awaited<ReturnType<typeof runTaskReading>> | undefined;
    const calls = await count(async () => {
      quick = await runTaskReading(client, "Rename_Task", vm!, { newName: "read-beside-1" }, [nameOf()]);
    });
    // The rename, and one read of its end with the VM's name: the name already the new one.
    expect(calls).toEqual({ Rename_Task: 1, RetrievePropertiesEx: 1 });
    expect(quick!.reads?.find((c) => c.obj.equals(vm!))?.props.name).toBe("read-beside-1");

    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 300 });
    const slow = await runTaskReading(client, "Rename_Task", vm!, { newName: "read-beside-2" }, [nameOf()]);
    expect(slow.reads).toBeUndefined();
    expect((await new PropertyCollector(client).get(vm!, z.object({ name: str }))).name).toBe("read-beside-2");
  });

  it("runTaskReading: a task that fails rejects with its fault, whatever was read beside it", async () => {
    await sim.control.addRule({ kind: "taskError", method: "Rename_Task", fault: "DuplicateName", message: "taken" });
    await expect(runTaskReading(client, "Rename_Task", vms[1]!, { newName: "x" }, [{ propSet: [{ type: "VirtualMachine", pathSet: ["name"] }], objectSet: [{ obj: vms[1]! }] }])).rejects.toBeInstanceOf(DuplicateNameFault);
  });
});
