// Engine-protocol harness, program side (test infrastructure, run as a child process
// by ./index.ts, one process per operation like the Pulumi CLI): runs a Pulumi
// program under the Node runtime's mocks and forwards each dynamic resource
// registration to the real dynamic-provider process, keeping state in a JSON file.
//
//   HARNESS_JOB='{"op":"up",...}' tsx test/engine/run-program.ts
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { stripProvider } from "../../provider/resources/check.js";
import { DynamicProviderProcess, ProviderCallError, annotateSecrets, type ProviderExit } from "./provider-process.js";
import type { HarnessEvent, HarnessJob, HarnessResult, StateFile, StateResource } from "./types.js";

const job = JSON.parse(process.env.HARNESS_JOB ?? "{}") as HarnessJob;
const events: HarnessEvent[] = [];
const errors: string[] = [];
let providerExit: ProviderExit | undefined;

// A failed registration rejects inside the Pulumi runtime; the CLI reports it as an
// error of the update, and so does this harness, instead of dying on it.
process.on("unhandledRejection", (reason) => {
  const message = reason instanceof Error ? reason.message : String(reason);
  if (!errors.some((e) => message.includes(e) || e.includes(message))) errors.push(message);
});

function loadState(): StateFile {
  return existsSync(job.stateFile) ? (JSON.parse(readFileSync(job.stateFile, "utf8")) as StateFile) : { resources: [] };
}

function saveState(state: StateFile): void {
  writeFileSync(job.stateFile, `${JSON.stringify(state, null, 2)}\n`);
}


/** The value the engine sends for an input that is not known yet (preview). */
const UNKNOWN_SENTINEL = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function urnOf(type: string, name: string): string {
  return `urn:pulumi:${job.stack}::${job.project}::${type}::${name}`;
}

async function main(): Promise<HarnessResult> {
  const cwd = resolve(job.cwd);
  const state = loadState();
  const proc = await DynamicProviderProcess.start(cwd);
  try {
    await proc.configure(job.config);
    if (job.op === "refresh") return await refresh(proc, state);
    if (job.op === "destroy") return await destroy(proc, state);
    return await run(proc, state, cwd);
  } finally {
    providerExit = await proc.stop();
  }
}

async function refresh(proc: DynamicProviderProcess, state: StateFile): Promise<HarnessResult> {
  const kept: StateResource[] = [];
  for (const r of state.resources) {
    const read = await proc.read(r.urn, r.id, r.outputs, r.inputs);
    if (!read.id) {
      events.push({ op: "deleted-outside", key: r.key });
      continue;
    }
    const before = stripProvider(r.outputs);
    const after = stripProvider(annotateSecrets(read.props, r.inputs));
    const changed = Object.keys({ ...before, ...after }).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
    events.push({ op: changed.length ? "drift" : "same", key: r.key, ...(changed.length ? { changed: Object.fromEntries(changed.map((k) => [k, { from: before[k], to: after[k] }])) } : {}) });
    kept.push({ ...r, id: read.id, outputs: { ...after, __provider: r.outputs.__provider } });
  }
  saveState({ resources: kept });
  return { events, errors, outputs: state.outputs ?? {} };
}

async function destroy(proc: DynamicProviderProcess, state: StateFile): Promise<HarnessResult> {
  const left = [...state.resources];
  for (const r of [...state.resources].reverse()) {
    try {
      await proc.delete(r.urn, r.id, r.outputs);
      events.push({ op: "delete", key: r.key });
      left.splice(left.indexOf(r), 1);
    } catch (err) {
      errors.push(`${r.key}: delete failed: ${(err as Error).message}`);
      break; // stop, as the engine does, so dependencies are not deleted from under what remains
    }
  }
  saveState({ resources: left });
  return { events, errors, outputs: {} };
}

async function run(proc: DynamicProviderProcess, state: StateFile, cwd: string): Promise<HarnessResult> {
  const preview = job.op === "preview";
  process.env.PULUMI_CONFIG = JSON.stringify(job.config);
  process.env.PULUMI_CONFIG_SECRET_KEYS = JSON.stringify(job.secretKeys ?? []);
  const req = createRequire(join(cwd, "package.json"));
  const pulumi = req("@pulumi/pulumi") as typeof import("@pulumi/pulumi");

  const old = new Map(state.resources.map((r) => [r.key, r]));
  const next: StateResource[] = [];
  const replacedOlds: StateResource[] = [];
  const failedKeys = new Set<string>();

  await pulumi.runtime.setMocks(
    {
      call: () => ({}),
      newResource: async (args) => {
        if (!args.type.startsWith("pulumi-nodejs:dynamic/")) return { id: `${args.name}-id`, state: args.inputs };
        try {
          const key = `${args.type}::${args.name}`;
          const urn = urnOf(args.type, args.name);
          const prior = old.get(key);
          // Unknowns (preview) go to the provider as the engine sends them: the sentinel string.
          const news = Object.fromEntries(Object.entries(args.inputs).map(([k, v]) => [k, pulumi.isUnknown(v) ? UNKNOWN_SENTINEL : v]));
          const checked = await proc.check(urn, prior?.inputs ?? {}, news);
          if (checked.failures.length) {
            const msg = checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; ");
            events.push({ op: "check-failed", key, failures: checked.failures });
            throw new Error(`${key}: ${msg}`);
          }
          // The engine puts the secret wrappers the provider cannot see back on its answers.
          const inputs = annotateSecrets(checked.inputs, news);
          if (!prior) {
            if (preview) {
              events.push({ op: "create", key, preview: true });
              return { id: undefined as unknown as string, state: stripProvider(inputs) };
            }
            const made = await proc.create(urn, inputs);
            made.outs = annotateSecrets(made.outs, inputs);
            events.push({ op: "create", key, id: made.id });
            next.push({ key, type: args.type, name: args.name, urn, id: made.id, inputs, outputs: made.outs });
            return { id: made.id, state: stripProvider(made.outs) };
          }
          const diff = await proc.diff(urn, prior.id, prior.outputs, inputs);
          const detail = diff.detailedDiff ? { detailedDiff: diff.detailedDiff } : {};
          // The engine replaces on a replace key and on any *_REPLACE of the detailed diff (DiffResult.Replace).
          if (diff.replaces.length || Object.values(diff.detailedDiff ?? {}).some((d) => d.kind.endsWith("_REPLACE"))) {
            events.push({ op: "replace", key, replaces: diff.replaces, ...detail, ...(preview ? { preview: true } : {}) });
            if (preview) return { id: prior.id, state: stripProvider(prior.outputs) };
            if (diff.deleteBeforeReplace) await proc.delete(urn, prior.id, prior.outputs);
            else replacedOlds.push(prior);
            const made = await proc.create(urn, inputs);
            made.outs = annotateSecrets(made.outs, inputs);
            next.push({ key, type: args.type, name: args.name, urn, id: made.id, inputs, outputs: made.outs });
            return { id: made.id, state: stripProvider(made.outs) };
          }
          // DIFF_UNKNOWN: the engine compares old and new inputs itself.
          const changes =
            diff.changes === "unknown"
              ? JSON.stringify(stripProvider(prior.inputs)) === JSON.stringify(stripProvider(inputs))
                ? "none"
                : "some"
              : diff.changes;
          if (changes === "some") {
            events.push({ op: "update", key, ...detail, ...(preview ? { preview: true } : {}) });
            if (preview) return { id: prior.id, state: stripProvider(prior.outputs) };
            const outs = annotateSecrets(await proc.update(urn, prior.id, prior.outputs, inputs), inputs);
            next.push({ ...prior, urn, inputs, outputs: outs });
            return { id: prior.id, state: stripProvider(outs) };
          }
          events.push({ op: "same", key });
          next.push({ ...prior, inputs: { ...inputs } });
          return { id: prior.id, state: stripProvider(prior.outputs) };
        } catch (err) {
          failedKeys.add(`${args.type}::${args.name}`);
          errors.push(err instanceof ProviderCallError ? `${err.op} ${args.name}: ${err.message}` : (err as Error).message);
          throw err;
        }
      },
    },
    job.project,
    job.stack,
    preview,
  );

  let programExports: Record<string, unknown> = {};
  try {
    programExports = req(resolve(cwd, job.program!)) as Record<string, unknown>;
  } catch (err) {
    errors.push(`the program failed: ${(err as Error).message}`);
  }
  // The runtime's own end of a program: every registration (each holds an RPC
  // keep-alive from the moment its resource is constructed until the monitor, here
  // the mocks, answered) is done, including those made inside apply callbacks.
  await pulumi.runtime.disconnect();
  const outputs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(programExports)) {
    if (k === "__esModule") continue;
    try {
      outputs[k] = await (pulumi.output(v) as unknown as { promise(): Promise<unknown> }).promise();
    } catch {
      outputs[k] = "(unavailable)";
    }
  }
  if (preview) return { events, errors, outputs };

  // Resources no longer in the program, then the old halves of replacements: newest first.
  const registered = new Set(next.map((r) => r.key));
  const gone = state.resources.filter((r) => !registered.has(r.key) && !failedKeys.has(r.key));
  const failedDeletes: StateResource[] = [];
  for (const r of [...replacedOlds, ...gone].reverse()) {
    try {
      await proc.delete(r.urn, r.id, r.outputs);
      events.push({ op: replacedOlds.includes(r) ? "delete-replaced" : "delete", key: r.key });
    } catch (err) {
      errors.push(`${r.key}: delete failed: ${(err as Error).message}`);
      if (!replacedOlds.includes(r)) failedDeletes.push(r);
    }
  }
  // Resources whose registration failed keep their old state.
  const kept = state.resources.filter((r) => !registered.has(r.key) && failedKeys.has(r.key));
  saveState({ resources: [...next, ...kept, ...failedDeletes], outputs });
  return { events, errors, outputs };
}

main()
  .then((result) => {
    process.stdout.write(`HARNESS_RESULT ${JSON.stringify({ ...result, ...(providerExit ? { provider: providerExit } : {}) })}\n`);
    process.exit(result.errors.length ? 1 : 0);
  })
  .catch((err: unknown) => {
    process.stdout.write(
      `HARNESS_RESULT ${JSON.stringify({ events, errors: [...errors, (err as Error).stack ?? String(err)], outputs: {}, ...(providerExit ? { provider: providerExit } : {}) })}\n`,
    );
    process.exit(1);
  });
