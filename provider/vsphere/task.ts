// Waiting for vCenter tasks. Two ways, chosen by measurement (bench/driver.ts,
// results in bench/results.json):
// - polling info every task_poll_interval costs one round trip per interval
//   (a 3 s task: 7; a 60 s clone: 121);
// - WaitForUpdatesEx on a private collector costs five (create collector, filter,
//   first answer, final answer, destroy) however long the task runs, and answers
//   the moment it ends. Only state/result/error are watched: every progress tick
//   of a real task would otherwise wake the wait (progress is watched only when
//   someone asked for it).
// "auto" (the default) polls once at once (a task already done costs one round
// trip), then waits for updates.
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import type { CallOptions, VimClient } from "./client.js";
import { ManagedObjectNotFoundFault, TaskTimeoutError, faultFromLocalized, type TaskContext } from "./errors.js";
import { PropertyCollector, UpdateWaiter, type PropertyFilterSpec, type RawObjectContent } from "./property.js";
import { dataObject, int, moRef, str } from "./schema.js";
import type { MethodArgs } from "./soap/envelope.js";
import { MoRef, type VimValue } from "./soap/xml.js";

export type TaskWaitStrategy = "poll" | "updates" | "auto";

export interface TaskWaitOptions {
  /** Give up waiting after this long (the task goes on in vCenter). Default: no limit. */
  timeoutMs?: number;
  strategy?: TaskWaitStrategy;
  /** Called with the task's progress (0-100) when it changes. */
  onProgress?: (percent: number) => void;
}

const TaskInfo = dataObject({
  name: str.optional(),
  descriptionId: str.optional(),
  entityName: str.optional(),
  state: str,
  progress: int.optional(),
  result: z.unknown().optional(),
  error: z.unknown().optional(),
});
type TaskInfo = z.infer<typeof TaskInfo>;
const TaskInfoSelection = z.object({ info: TaskInfo });

/** The properties a waiter watches (plus info.progress when progress is wanted). */
const WATCHED = ["info.state", "info.result", "info.error", "info.name", "info.descriptionId", "info.entityName"];

function settle(task: MoRef, info: TaskInfo): { done: true; value: VimValue | undefined } | { done: false } {
  if (info.state === "success") return { done: true, value: info.result as VimValue | undefined };
  if (info.state === "error") {
    const ctx: TaskContext = { task };
    if (info.name) ctx.name = info.name;
    if (info.descriptionId) ctx.descriptionId = info.descriptionId;
    if (info.entityName) ctx.entityName = info.entityName;
    throw faultFromLocalized(info.error as VimValue).attachContext(info.name ?? "task", ctx);
  }
  return { done: false };
}

/**
 * Waits for a task to end. Resolves with its `info.result`; a task that ends in
 * error rejects with the typed fault (e.g. DuplicateNameFault) carrying the task.
 */
export async function waitForTask(client: VimClient, task: MoRef, opts: TaskWaitOptions = {}): Promise<VimValue | undefined> {
  const strategy = opts.strategy ?? "auto";
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  const pc = new PropertyCollector(client);
  let lastProgress = -1;
  const progress = (p: number | undefined) => {
    if (p !== undefined && p !== lastProgress) {
      lastProgress = p;
      opts.onProgress?.(p);
    }
  };

  const pollOnce = async () => {
    const { info } = await pc.get(task, TaskInfoSelection);
    progress(info.progress);
    return settle(task, info);
  };

  if (strategy === "poll" || strategy === "auto") {
    const first = await pollOnce();
    if (first.done) return first.value;
  }
  if (strategy === "updates" || strategy === "auto") {
    try {
      return await waitWithUpdates(client, task, deadline, progress, opts.onProgress !== undefined);
    } catch (err) {
      // A re-login drops the private collector: carry on by polling.
      if (!(err instanceof ManagedObjectNotFoundFault) || err.obj?.type !== "PropertyCollector") throw err;
    }
  }
  for (;;) {
    if (Date.now() >= deadline) throw new TaskTimeoutError(task, opts.timeoutMs ?? 0);
    await sleep(Math.min(client.options.taskPollIntervalMs, Math.max(0, deadline - Date.now())));
    const r = await pollOnce();
    if (r.done) return r.value;
  }
}

/**
 * Waits for several tasks started together (e.g. one datastore search per datastore):
 * ONE round trip reads every task's info; each task still running then waits on its own
 * (waitForTask's "updates" strategy). Each task's outcome is settled on its own, so one
 * failed task does not hide the others' results.
 */
export async function waitForTasks(client: VimClient, tasks: MoRef[], opts: TaskWaitOptions = {}): Promise<Array<PromiseSettledResult<VimValue | undefined>>> {
  if (tasks.length === 0) return [];
  if (tasks.length === 1) return Promise.allSettled([waitForTask(client, tasks[0]!, opts)]);
  const contents = await new PropertyCollector(client).retrieve([
    { propSet: [{ type: "Task", pathSet: ["info"] }], objectSet: tasks.map((obj) => ({ obj })), reportMissingObjectsInResults: true },
  ]);
  const infos = new Map(contents.filter((c) => c.props.info !== undefined).map((c) => [c.obj.toString(), TaskInfo.parse(c.props.info)]));
  return Promise.allSettled(
    tasks.map(async (task) => {
      const info = infos.get(task.toString());
      if (info) {
        const r = settle(task, info);
        if (r.done) return r.value;
      }
      // Still running (or not seen): its own wait, without another first look.
      return waitForTask(client, task, { ...opts, strategy: opts.strategy === "poll" ? "poll" : "updates" });
    }),
  );
}

/**
 * Starts several tasks at once and waits for them together (waitForTasks: one round trip
 * for every outcome). Each start resolves its task, or `{ value }` when there is no task
 * to wait for (a lost answer found applied: runTask's `recovered`). The outcomes come in
 * the order of `starts`, each settled on its own.
 */
export async function runTasksTogether(
  client: VimClient,
  starts: Array<() => Promise<MoRef | { value: VimValue | undefined }>>,
  opts: TaskWaitOptions = {},
): Promise<Array<PromiseSettledResult<VimValue | undefined>>> {
  const started = await Promise.allSettled(starts.map((start) => start()));
  const tasks = started.flatMap((s) => (s.status === "fulfilled" && s.value instanceof MoRef ? [s.value] : []));
  const waited = await waitForTasks(client, tasks, opts);
  let next = 0;
  return started.map((s): PromiseSettledResult<VimValue | undefined> => {
    if (s.status === "rejected") return s;
    return s.value instanceof MoRef ? waited[next++]! : { status: "fulfilled", value: s.value.value };
  });
}

async function waitWithUpdates(
  client: VimClient,
  task: MoRef,
  deadline: number,
  progress: (p: number | undefined) => void,
  watchProgress: boolean,
): Promise<VimValue | undefined> {
  const waiter = await UpdateWaiter.create(client);
  try {
    await waiter.watch(task, watchProgress ? [...WATCHED, "info.progress"] : WATCHED);
    const info: Record<string, VimValue | undefined> = {};
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new TaskTimeoutError(task, 0);
      const changes = await waiter.next(Math.max(1, Math.min(60, Math.ceil(left / 1000))));
      const props = changes.get(task.toString());
      if (!props) continue;
      Object.assign(info, props);
      const parsed = TaskInfo.parse({
        state: info["info.state"],
        progress: info["info.progress"],
        result: info["info.result"],
        error: info["info.error"],
        name: info["info.name"],
        descriptionId: info["info.descriptionId"],
        entityName: info["info.entityName"],
      });
      progress(parsed.progress);
      const r = settle(task, parsed);
      if (r.done) return r.value;
    }
  } finally {
    await waiter.destroy();
  }
}

/**
 * Calls a `*_Task` method and waits for its task. When the answer was lost and
 * `checkApplied` found the change made, its value (e.g. the VM created) is the
 * result: there is no task to wait for.
 */
export async function runTask(
  client: VimClient,
  method: `${string}_Task`,
  self: MoRef,
  args: MethodArgs = {},
  opts: TaskWaitOptions & CallOptions = {},
): Promise<VimValue | undefined> {
  const { value, recovered } = await client.call(method, self, args, opts);
  if (recovered) return value;
  return waitForTask(client, moRef.parse(value), opts);
}

/**
 * runTask, reading `alongside` in the same call as the task's first look: when the task
 * is done by then (a quick task), the caller gets what it would have read next without
 * another round trip; otherwise `reads` is undefined (the caller reads them itself once
 * the task has ended, as after runTask).
 */
export async function runTaskReading(
  client: VimClient,
  method: `${string}_Task`,
  self: MoRef,
  args: MethodArgs,
  alongside: PropertyFilterSpec[],
  opts: TaskWaitOptions & CallOptions = {},
): Promise<{ value: VimValue | undefined; reads: RawObjectContent[] | undefined }> {
  const { value, recovered } = await client.call(method, self, args, opts);
  if (recovered) return { value, reads: undefined };
  const task = moRef.parse(value);
  if (alongside.length === 0) return { value: await waitForTask(client, task, opts), reads: undefined };
  const contents = await new PropertyCollector(client).retrieve([{ propSet: [{ type: "Task", pathSet: ["info"] }], objectSet: [{ obj: task }] }, ...alongside]);
  const own = contents.find((c) => c.obj.equals(task));
  if (own) {
    const info = TaskInfo.parse(own.props.info);
    opts.onProgress?.(info.progress ?? 0);
    const r = settle(task, info);
    if (r.done) return { value: r.value, reads: contents.filter((c) => c !== own) };
  }
  // Still running: wait for its end without another poll first.
  return { value: await waitForTask(client, task, { ...opts, strategy: opts.strategy === "poll" ? "poll" : "updates" }), reads: undefined };
}

