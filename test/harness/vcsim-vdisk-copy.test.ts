// CopyVirtualDisk_Task / MoveVirtualDisk_Task on the simulator, as ESXi runs them: a
// single-file sparse source (made by qemu-img) becomes a flat disk with the same content.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DatastoreHarness } from "./datastore-support.js";

let sim: Vcsim;
let ds: DatastoreHarness;
let work: string;
/** The disk's content: 8 MiB, random data at the start and in the middle, zeros elsewhere. */
let raw: Buffer;

function qemuVmdk(subformat: string, adapter = "lsilogic"): Buffer {
  const out = join(work, `${subformat}-${adapter}.vmdk`);
  execFileSync("qemu-img", ["convert", "-f", "raw", "-O", "vmdk", "-o", `subformat=${subformat},adapter_type=${adapter}`, join(work, "disk.raw"), out]);
  return readFileSync(out);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "vcsim-vdisk-"));
  raw = Buffer.alloc(8 << 20);
  randomBytes(1 << 20).copy(raw, 0);
  randomBytes(300_000).copy(raw, 5 << 20); // not grain-aligned at its end
  writeFileSync(join(work, "disk.raw"), raw);
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  ds = await DatastoreHarness.open(sim);
});
afterAll(async () => {
  await sim?.stop();
  rmSync(work, { recursive: true, force: true });
});

async function copy(
  method: "CopyVirtualDisk_Task" | "MoveVirtualDisk_Task",
  from: string,
  to: string,
  opts: { force?: boolean; destSpec?: { diskType: string; adapterType: string }; destDatacenter?: boolean } = {},
) {
  const spec = opts.destSpec
    ? `<destSpec xsi:type="VirtualDiskSpec"><diskType>${opts.destSpec.diskType}</diskType><adapterType>${opts.destSpec.adapterType}</adapterType></destSpec>`
    : "";
  const dest = opts.destDatacenter === false ? `<destName>[LocalDS_0] ${to}</destName>` : ds.diskArgs(to, "destName", "destDatacenter");
  return ds.runTask(
    method,
    ds.vdm,
    ds.diskArgs(from, "sourceName", "sourceDatacenter") + dest + spec + (opts.force === undefined ? "" : `<force>${opts.force}</force>`),
  );
}

describe.each([
  ["monolithicSparse", "lsilogic"],
  ["streamOptimized", "ide"],
])("a %s source (%s)", (subformat, adapter) => {
  it("CopyVirtualDisk_Task makes a flat disk with the same content, preallocated and busLogic without a destSpec", async () => {
    const dir = `copy-${subformat}-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.http("PUT", `${dir}/src.vmdk`, qemuVmdk(subformat, adapter));
    const info = await copy("CopyVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/dst.vmdk`);
    expect(info.state).toBe("success");
    const flat = await ds.read(`${dir}/dst-flat.vmdk`);
    expect(flat.length).toBe(raw.length);
    expect(flat.equals(raw)).toBe(true);
    const text = (await ds.read(`${dir}/dst.vmdk`)).toString();
    expect(text).toContain('createType="vmfs"');
    expect(text).toContain(`RW ${raw.length / 512} VMFS "dst-flat.vmdk"`);
    expect(text).toContain('ddb.adapterType = "buslogic"');
    expect(text).not.toContain("thinProvisioned");
    expect(await ds.status(`${dir}/src.vmdk`)).toBe(200); // a copy keeps its source
  });

  it("CopyVirtualDisk_Task with a destSpec makes the disk it asks for (destDatacenter defaulting to the source's)", async () => {
    const dir = `spec-${subformat}-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.http("PUT", `${dir}/src.vmdk`, qemuVmdk(subformat, adapter));
    const info = await copy("CopyVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/dst.vmdk`, {
      destSpec: { diskType: "thin", adapterType: adapter === "ide" ? "ide" : "lsiLogic" },
      destDatacenter: false,
    });
    expect(info.state).toBe("success");
    expect((await ds.read(`${dir}/dst-flat.vmdk`)).equals(raw)).toBe(true);
    const text = (await ds.read(`${dir}/dst.vmdk`)).toString();
    expect(text).toContain(`ddb.adapterType = "${adapter}"`);
    expect(text).toContain('ddb.thinProvisioned = "1"');
  });

  it("MoveVirtualDisk_Task makes the flat disk and removes the source", async () => {
    const dir = `move-${subformat}-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.http("PUT", `${dir}/src.vmdk`, qemuVmdk(subformat, adapter));
    expect((await copy("MoveVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/moved.vmdk`)).state).toBe("success");
    expect((await ds.read(`${dir}/moved-flat.vmdk`)).equals(raw)).toBe(true);
    expect((await ds.read(`${dir}/moved.vmdk`)).toString()).toContain(`ddb.adapterType = "${adapter}"`);
    expect(await ds.status(`${dir}/src.vmdk`)).toBe(404);
  });
});

describe("copy and move faults", () => {
  it("a missing source is FileNotFound naming the source; an existing destination FileAlreadyExists (a copy ignores force, a move honours it)", async () => {
    const dir = `faults-${Date.now()}`;
    await ds.mkdir(dir);
    const missing = await copy("CopyVirtualDisk_Task", `${dir}/none.vmdk`, `${dir}/x.vmdk`);
    expect(missing.error.fault["@_type"]).toBe("FileNotFound");
    expect(missing.error.fault.file).toBe(`[LocalDS_0] ${dir}/none.vmdk`);

    await ds.http("PUT", `${dir}/src.vmdk`, qemuVmdk("monolithicSparse"));
    await ds.createDisk(`${dir}/taken.vmdk`, 1024);
    for (const force of [undefined, true]) {
      const taken = await copy("CopyVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/taken.vmdk`, { force });
      expect(taken.error.fault["@_type"]).toBe("FileAlreadyExists");
      expect(taken.error.fault.file).toBe(`[LocalDS_0] ${dir}/taken.vmdk`);
    }
    expect((await ds.read(`${dir}/taken-flat.vmdk`)).length).toBe(1 << 20);
    const unforced = await copy("MoveVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/taken.vmdk`);
    expect(unforced.error.fault["@_type"]).toBe("FileAlreadyExists");
    expect((await copy("MoveVirtualDisk_Task", `${dir}/src.vmdk`, `${dir}/taken.vmdk`, { force: true })).state).toBe("success");
    expect((await ds.read(`${dir}/taken-flat.vmdk`)).equals(raw)).toBe(true);
    expect(await ds.status(`${dir}/src.vmdk`)).toBe(404);
  });

  it("of moves and copies to one name running together, one wins and every other is FileAlreadyExists (the name is claimed at once)", async () => {
    const dir = `race-${Date.now()}`;
    await ds.mkdir(dir);
    // Each from its own session (as two processes publishing one image); flat sources
    // moved (a rename of the extent, the quickest way to lose a race), copied, and a
    // sparse one. Rounds, because a race is a matter of timing: before the name was
    // claimed at once, two winners showed within a few rounds.
    const sparse = qemuVmdk("monolithicSparse");
    const small = randomBytes(64 * 1024);
    const n = 8;
    const sessions = await Promise.all(Array.from({ length: n }, () => DatastoreHarness.open(sim)));
    for (let round = 0; round < 25; round++) {
      for (let i = 0; i < n; i++) {
        if (i === n - 1) {
          await ds.http("PUT", `${dir}/r${round}-${i}.vmdk`, sparse);
        } else {
          await ds.createDisk(`${dir}/r${round}-${i}.vmdk`, 64);
          await ds.http("PUT", `${dir}/r${round}-${i}-flat.vmdk`, small);
        }
      }
      const infos = await Promise.all(
        sessions.map((h, i) =>
          h.runTask(
            i === 2 ? "CopyVirtualDisk_Task" : "MoveVirtualDisk_Task",
            h.vdm,
            h.diskArgs(`${dir}/r${round}-${i}.vmdk`, "sourceName", "sourceDatacenter") + h.diskArgs(`${dir}/one${round}.vmdk`, "destName", "destDatacenter"),
          ),
        ),
      );
      const won = infos.flatMap((info, i) => (info.state === "success" ? [i] : []));
      expect(won, `round ${round}`).toHaveLength(1);
      for (const info of infos.filter((x) => x.state !== "success")) expect(info.error.fault["@_type"]).toBe("FileAlreadyExists");
      // The winner's disk is whole: its descriptor names its extent, the extent is its content.
      expect((await ds.read(`${dir}/one${round}.vmdk`)).toString()).toContain(`"one${round}-flat.vmdk"`);
      const content = await ds.read(`${dir}/one${round}-flat.vmdk`);
      expect(content.equals(won[0] === n - 1 ? raw : small), `round ${round}`).toBe(true);
    }
  });

  it("a corrupt or truncated sparse source is InvalidDiskFormat and leaves nothing at the destination", async () => {
    const dir = `corrupt-${Date.now()}`;
    await ds.mkdir(dir);
    const stream = qemuVmdk("streamOptimized");
    const sparse = qemuVmdk("monolithicSparse");
    const cases: Record<string, Buffer> = {
      truncated: stream.subarray(0, Math.floor(stream.length / 2)),
      "sparse cut": sparse.subarray(0, 64 * 1024),
      garbage: Buffer.concat([sparse.subarray(0, 512), Buffer.alloc(4096, 0xff)]),
    };
    for (const [name, bytes] of Object.entries(cases)) {
      await ds.http("PUT", `${dir}/${name}.vmdk`, bytes);
      const info = await copy("CopyVirtualDisk_Task", `${dir}/${name}.vmdk`, `${dir}/${name}-out.vmdk`);
      expect(info.state, name).toBe("error");
      expect(info.error.fault["@_type"], name).toBe("InvalidDiskFormat");
      expect(await ds.status(`${dir}/${name}-out.vmdk`), name).toBe(404);
      expect(await ds.status(`${dir}/${name}-out-flat.vmdk`), name).toBe(404);
    }
  });
});

describe("a flat source", () => {
  it("is copied byte for byte, its descriptor's extent renamed after the destination", async () => {
    const dir = `flat-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.createDisk(`${dir}/f.vmdk`, 8192);
    await ds.http("PUT", `${dir}/f-flat.vmdk`, raw);
    expect((await copy("CopyVirtualDisk_Task", `${dir}/f.vmdk`, `${dir}/g.vmdk`)).state).toBe("success");
    expect((await ds.read(`${dir}/g-flat.vmdk`)).equals(raw)).toBe(true);
    const src = (await ds.read(`${dir}/f.vmdk`)).toString();
    const dst = (await ds.read(`${dir}/g.vmdk`)).toString();
    // Without a destSpec the copy is preallocated and busLogic; nothing else changes but the extent's name.
    expect(dst).toBe(
      src
        .replace('"f-flat.vmdk"', '"g-flat.vmdk"')
        .replace('ddb.adapterType = "lsilogic"', 'ddb.adapterType = "buslogic"')
        .replace('ddb.thinProvisioned = "1"\n', ""),
    );

    // A move keeps the descriptor as it was, but for the extent's name.
    expect((await copy("MoveVirtualDisk_Task", `${dir}/g.vmdk`, `${dir}/h.vmdk`)).state).toBe("success");
    expect((await ds.read(`${dir}/h-flat.vmdk`)).equals(raw)).toBe(true);
    expect((await ds.read(`${dir}/h.vmdk`)).toString()).toBe(dst.replace('"g-flat.vmdk"', '"h-flat.vmdk"'));
    expect(await ds.status(`${dir}/g.vmdk`)).toBe(404);
    expect(await ds.status(`${dir}/g-flat.vmdk`)).toBe(404);
  });
});

describe("DeleteVirtualDisk_Task", () => {
  it("removes a sparse disk's one file, a flat disk's descriptor and extent; a missing disk is FileNotFound", async () => {
    const dir = `delete-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.http("PUT", `${dir}/sparse.vmdk`, qemuVmdk("monolithicSparse"));
    await ds.createDisk(`${dir}/flat.vmdk`, 1024);
    for (const name of ["sparse", "flat"]) {
      const info = await ds.runTask("DeleteVirtualDisk_Task", ds.vdm, ds.diskArgs(`${dir}/${name}.vmdk`));
      expect(info.state, name).toBe("success");
      expect(await ds.status(`${dir}/${name}.vmdk`), name).toBe(404);
    }
    expect(await ds.status(`${dir}/flat-flat.vmdk`)).toBe(404);
    const missing = await ds.runTask("DeleteVirtualDisk_Task", ds.vdm, ds.diskArgs(`${dir}/sparse.vmdk`));
    expect(missing.error.fault["@_type"]).toBe("FileNotFound");
  });
});
