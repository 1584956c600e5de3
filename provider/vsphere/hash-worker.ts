// Hashing a large upload on a worker thread, so that sha256 (~2 GB/s with SHA-NI) runs
// beside the main thread's TLS writes instead of between them. Measured per 256 MiB
// upload (bench/transfer.ts, per-thread CPU from /proc): inline, the main thread spends
// ~125 ms hashing and ~120 ms in TLS and socket writes; with the worker, ~150 ms (TLS,
// writes and the copy into the ring) while the worker hashes. That lifts the main
// thread's ceiling from ~1 to ~1.7 GB/s, but costs ~50 ms more CPU in all (the copy,
// wake-ups, the bytes read again on another core). On two cores shared with the server
// (the bench's simulator) there is no core to spare and the worker measured 5-10% slower
// than inline, so workers are only used where a core is left beyond the main thread and
// one more (the TLS peer, the kernel's network stack, the rest of the machine).
//
// The main thread copies each chunk into a shared ring and goes on sending the chunk; the
// worker hashes what the ring holds and frees the space. Positions and wake-ups go
// through Atomics on the shared buffer: no message per chunk. A worker is kept (unref'd)
// for the next upload and ended when idle; without one the caller hashes inline.
import { createHash, type Hash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** Ring size: how far the hash may lag behind the bytes sent (and the shared memory per worker). */
const RING_BYTES = 4 * 2 ** 20;
/** A sleeping worker is woken once this much waits in the ring (or at the end). */
const WAKE_BYTES = 2 ** 20;
/** The worker hands space back in slices this large, so a full ring frees up soon. */
const SLICE_BYTES = 256 * 2 ** 10;
/** An idle worker is ended after this long (its ~10 MB RSS given back). */
const IDLE_MS = 30_000;

// ctrl slots (BigInt64Array over a SharedArrayBuffer)
const WRITTEN = 0; // bytes the main thread put in the ring (this job)
const HASHED = 1; // bytes the worker hashed (this job)
const SEQ = 2; // bumped on every change the worker must notice; it sleeps on this slot
const STATE = 3; // RUNNING, END (hash the rest and answer) or ABORT (answer nothing)
const ASLEEP = 4; // 1 while the worker waits for bytes: only then is a wake-up worth its cost
const WAITING = 5; // 1 while the main thread waits for ring space
const SLOTS = 6;
const RUNNING = 0n;
const END = 1n;
const ABORT = 2n;

// The worker's program, as CommonJS text (eval: true) so it runs the same from the
// sources (tsx, vitest) and from the bundle (tsup), with no file to locate.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { ring, ctrl, slice } = workerData;
const size = BigInt(ring.length);
parentPort.on("message", (job) => {
  const hashes = job.algorithms.map((a) => createHash(a));
  let hashed = 0n;
  for (;;) {
    const seq = Atomics.load(ctrl, ${SEQ});
    const written = Atomics.load(ctrl, ${WRITTEN});
    if (written > hashed) {
      const from = Number(hashed % size);
      const n = Math.min(Number(written - hashed), ring.length - from, slice);
      const view = ring.subarray(from, from + n);
      for (const h of hashes) h.update(view);
      hashed += BigInt(n);
      Atomics.store(ctrl, ${HASHED}, hashed);
      if (Atomics.load(ctrl, ${WAITING}) === 1n) Atomics.notify(ctrl, ${HASHED});
      continue;
    }
    const state = Atomics.load(ctrl, ${STATE});
    if (state === ${ABORT}n) return parentPort.postMessage({ id: job.id });
    // WRITTEN is stored before STATE: read after END, it holds the last bytes.
    if (state === ${END}n && Atomics.load(ctrl, ${WRITTEN}) > hashed) continue;
    if (state === ${END}n) return parentPort.postMessage({ id: job.id, digests: hashes.map((h) => h.digest("hex")) });
    // A put after the load of seq above bumped it: the wait then returns at once.
    Atomics.store(ctrl, ${ASLEEP}, 1n);
    Atomics.wait(ctrl, ${SEQ}, seq);
    Atomics.store(ctrl, ${ASLEEP}, 0n);
  }
});
`;

export class HashWorkerError extends Error {
  override name = "HashWorkerError";
  readonly code = "HashWorker";
}

/** Digests of the bytes given, per algorithm, once the job is finished. */
export type DigestsByAlgorithm<A extends string> = Partial<Record<A, string>>;

/** Incremental hashing, inline or on a worker; `update` returns a promise only when it must wait for ring space. */
export interface Hasher<A extends string> {
  update(bytes: Uint8Array): Promise<void> | undefined;
  /** Hex digests of everything given; the hasher is done after this. */
  finish(): Promise<DigestsByAlgorithm<A>>;
  /** Drops the job (a failed upload): no digests; resolves when the worker is back in the pool. */
  abort(): Promise<void>;
}

// Node has had Atomics.waitAsync since 16; TypeScript types it from lib es2024 only.
const waitAsync = (
  Atomics as unknown as { waitAsync(a: BigInt64Array, i: number, v: bigint): { async: false; value: string } | { async: true; value: Promise<string> } }
).waitAsync.bind(Atomics);

class RingWorker {
  readonly ring = new Uint8Array(new SharedArrayBuffer(RING_BYTES));
  readonly ctrl = new BigInt64Array(new SharedArrayBuffer(SLOTS * 8));
  readonly worker: Worker;
  /** Set once the thread is gone: every wait and answer ends with this. */
  failure: Error | undefined;
  #jobs = 0;
  #answer: ((m: { id: number; digests?: string[] }) => void) | undefined;
  #idle: NodeJS.Timeout | undefined;

  constructor(private readonly onGone: (w: RingWorker) => void) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ring: this.ring, ctrl: this.ctrl, slice: SLICE_BYTES },
      // The worker holds a few hashes and views; a small heap keeps its RSS small.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    });
    this.worker.unref();
    this.worker.on("message", (m: { id: number; digests?: string[] }) => this.#answer?.(m));
    // "error" is followed by "exit": the first one counts.
    const gone = (err: Error) => {
      if (this.failure) return;
      this.failure = err;
      // Wake a main-thread wait for ring space: it sees the failure.
      Atomics.notify(this.ctrl, HASHED);
      this.#answer?.({ id: -1 });
      this.onGone(this);
    };
    this.worker.on("error", (err) => gone(new HashWorkerError(`the hashing worker failed: ${err.message}`, { cause: err })));
    this.worker.on("exit", (code) => gone(new HashWorkerError(`the hashing worker exited (code ${code})`)));
  }

  /** Starts a job; the ring is empty and the worker is waiting for one. */
  start(algorithms: readonly string[]): number {
    clearTimeout(this.#idle);
    for (const slot of [WRITTEN, HASHED, STATE, WAITING]) Atomics.store(this.ctrl, slot, 0n);
    const id = ++this.#jobs;
    this.worker.postMessage({ id, algorithms });
    return id;
  }

  /** Ends the job (END or ABORT) and resolves with the worker's answer. */
  stop(id: number, how: bigint): Promise<string[] | undefined> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      this.#answer = (m) => {
        if (m.id !== id && !this.failure) return;
        this.#answer = undefined;
        if (this.failure) reject(this.failure);
        else resolve(m.digests);
      };
      Atomics.store(this.ctrl, STATE, how);
      this.#wake(true);
    });
  }

  /** Copies as much of `bytes` as fits; returns how much. */
  put(bytes: Uint8Array): number {
    const written = Atomics.load(this.ctrl, WRITTEN);
    const free = RING_BYTES - Number(written - Atomics.load(this.ctrl, HASHED));
    const n = Math.min(free, bytes.byteLength);
    if (n === 0) return 0;
    const at = Number(written % BigInt(RING_BYTES));
    const first = Math.min(n, RING_BYTES - at);
    this.ring.set(bytes.subarray(0, first), at);
    if (n > first) this.ring.set(bytes.subarray(first, n), 0);
    Atomics.store(this.ctrl, WRITTEN, written + BigInt(n));
    // Waking a sleeping worker costs a context switch (on two cores, often the main
    // thread's): it is woken once a batch is there, not for every chunk.
    this.#wake(Number(written + BigInt(n) - Atomics.load(this.ctrl, HASHED)) >= WAKE_BYTES);
    return n;
  }

  /** Resolves when the worker has freed some space (or failed). */
  async space(): Promise<void> {
    // WAITING before HASHED is read: the worker then either sees it and notifies, or
    // moved HASHED before and the wait returns at once.
    Atomics.store(this.ctrl, WAITING, 1n);
    try {
      const hashed = Atomics.load(this.ctrl, HASHED);
      if (RING_BYTES - Number(Atomics.load(this.ctrl, WRITTEN) - hashed) > 0) return;
      const w = waitAsync(this.ctrl, HASHED, hashed);
      if (w.async) await w.value;
    } finally {
      Atomics.store(this.ctrl, WAITING, 0n);
    }
    if (this.failure) throw this.failure;
  }

  idle(release: () => void): void {
    this.#idle = setTimeout(release, IDLE_MS);
    this.#idle.unref();
  }

  /** Tells the worker something changed; wakes it (if asleep) only when `now`. */
  #wake(now: boolean): void {
    Atomics.add(this.ctrl, SEQ, 1n);
    if (now && Atomics.load(this.ctrl, ASLEEP) === 1n) Atomics.notify(this.ctrl, SEQ);
  }
}

const pool: RingWorker[] = [];
let running = 0;
let started = 0;
/** Jobs on workers at once; beyond that, inline. See the top of this file for why two cores get none. */
let workerLimit = Math.max(0, availableParallelism() - 2);

/**
 * Sets how many uploads may hash on worker threads at once (0: always inline); returns
 * the previous limit. The default suits the machine; tests and benches set it to compare.
 */
export function setHashWorkerLimit(n: number): number {
  const before = workerLimit;
  workerLimit = Math.max(0, Math.floor(n));
  return before;
}

/** Workers started so far, alive now, and of those busy with a job. */
export function hashWorkerStats(): { started: number; running: number; busy: number } {
  return { started, running, busy: running - pool.length };
}
function takeWorker(): RingWorker | undefined {
  if (running - pool.length >= workerLimit) return undefined;
  const idle = pool.pop();
  if (idle) return idle;
  running++;
  try {
    const w = new RingWorker((gone) => {
      running--;
      const i = pool.indexOf(gone);
      if (i >= 0) pool.splice(i, 1);
    });
    started++;
    return w;
  } catch {
    running--;
    return undefined; // no thread to be had: hash inline
  }
}

function giveBack(w: RingWorker): void {
  if (w.failure) return;
  pool.push(w);
  w.idle(() => {
    const i = pool.indexOf(w);
    if (i < 0) return; // taken again meanwhile
    pool.splice(i, 1);
    void w.worker.terminate();
  });
}

function inlineHasher<A extends string>(algorithms: readonly A[]): Hasher<A> {
  const hashes: Array<[A, Hash]> = algorithms.map((a) => [a, createHash(a)]);
  return {
    update(bytes) {
      for (const [, h] of hashes) h.update(bytes);
      return undefined;
    },
    finish: async () => Object.fromEntries(hashes.map(([a, h]) => [a, h.digest("hex")])) as DigestsByAlgorithm<A>,
    abort: async () => {},
  };
}

/**
 * A hasher for `length` bytes: on a worker thread when the upload is large enough to
 * pay for it (a job on a kept worker costs well under a millisecond; a new worker ~30 ms)
 * and one is free, else inline.
 */
export function hasherFor<A extends string>(algorithms: readonly A[], length: number, minOffThreadBytes = 16 * 2 ** 20): Hasher<A> {
  if (algorithms.length === 0 || length < minOffThreadBytes) return inlineHasher(algorithms);
  const w = takeWorker();
  if (!w) return inlineHasher(algorithms);
  const id = w.start(algorithms);
  let done = false;
  const end = (how: bigint) => {
    done = true;
    const answer = w.stop(id, how);
    // Back to the pool once the worker is waiting for a job again.
    return { answer, back: answer.then(() => giveBack(w), () => {}) };
  };
  return {
    update(bytes) {
      if (done) throw new Error("hasher: update after finish or abort");
      if (w.failure) throw w.failure;
      const n = w.put(bytes);
      if (n === bytes.byteLength) return undefined;
      return (async () => {
        let rest = bytes.subarray(n);
        while (rest.byteLength > 0) {
          await w.space();
          rest = rest.subarray(w.put(rest));
        }
      })();
    },
    async finish() {
      const digests = await end(END).answer;
      if (!digests) throw new HashWorkerError("the hashing worker gave no digests");
      return Object.fromEntries(algorithms.map((a, i) => [a, digests[i]!])) as DigestsByAlgorithm<A>;
    },
    async abort() {
      if (!done) await end(ABORT).back;
    },
  };
}
