// Formats vCenter cannot take (qcow2, VHD, VHDX, VDI, a raw disk not whole KiB) become a
// monolithicSparse VMDK with qemu-img, the tool operators otherwise run by hand. The
// input format is always given (-f): qemu-img never guesses it from downloaded bytes.
import { execFile } from "node:child_process";
import { ConversionFailedError, ConversionToolMissingError } from "./image-errors.js";
import type { ImageInfo } from "./image-format.js";
import type { AdapterType } from "./vmdk.js";

export type QemuFormat = "qcow2" | "vpc" | "vhdx" | "vdi" | "raw";

/** What qemu-img must convert, or undefined when the bytes publish as they are. */
export function conversionOf(info: ImageInfo): QemuFormat | undefined {
  switch (info.format) {
    case "qcow2":
    case "vhd":
    case "vhdx":
    case "vdi":
      return info.qemuFormat;
    case "raw":
      // A raw disk publishes as a flat disk when vCenter can size it (whole KiB).
      return info.size !== undefined && info.size % 1024 === 0 ? undefined : "raw";
    default:
      return undefined;
  }
}

/** A format's name for messages ("vpc" is qemu's name for VHD). */
export const formatName = (f: QemuFormat): string => (f === "vpc" ? "VHD" : f === "raw" ? "raw disk" : f === "qcow2" ? "qcow2" : f.toUpperCase());

/** qemu-img's adapter_type for the VM's controller: the SAS and paravirtual controllers take an lsilogic disk. */
export function qemuAdapter(a: AdapterType | undefined): "ide" | "buslogic" | "lsilogic" {
  return a === "ide" ? "ide" : a === "busLogic" ? "buslogic" : "lsilogic";
}

interface Ran {
  stdout: string;
  stderr: string;
  code: number | null;
}

function run(tool: string, args: string[], signal?: AbortSignal): Promise<Ran | "missing"> {
  return new Promise((resolve, reject) => {
    execFile(tool, args, { maxBuffer: 4 << 20, ...(signal ? { signal } : {}) }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr, code: 0 });
      const e = err as NodeJS.ErrnoException & { code?: string | number };
      if (e.code === "ENOENT" || e.code === "EACCES") return resolve("missing");
      if (e.name === "AbortError") return reject(err);
      resolve({ stdout, stderr: stderr || err.message, code: typeof e.code === "number" ? e.code : null });
    });
  });
}

// Whether qemu-img runs, asked once per process (per path): preview checks every image.
const present = new Map<string, Promise<boolean>>();

/** Throws ConversionToolMissingError unless `tool --version` runs. */
export async function checkQemuImg(tool: string, source: string, format: QemuFormat): Promise<void> {
  let p = present.get(tool);
  if (!p) present.set(tool, (p = run(tool, ["--version"]).then((r) => r !== "missing" && r.code === 0)));
  if (!(await p)) throw new ConversionToolMissingError(source, formatName(format), tool);
}

/** The virtual size qemu-img reads from a local image (formats whose header detection does not parse). */
export async function qemuVirtualSize(tool: string, path: string, format: QemuFormat): Promise<number | undefined> {
  const r = await run(tool, ["info", "-f", format, "--output=json", path]);
  if (r === "missing" || r.code !== 0) return undefined;
  try {
    const size = (JSON.parse(r.stdout) as { "virtual-size"?: unknown })["virtual-size"];
    return typeof size === "number" ? size : undefined;
  } catch {
    return undefined;
  }
}

/** `qemu-img convert -f <format> -O vmdk -o subformat=monolithicSparse,adapter_type=…`. */
export async function convertToVmdk(opts: { tool: string; input: string; output: string; format: QemuFormat; adapterType: AdapterType | undefined; source: string; signal?: AbortSignal }): Promise<void> {
  const args = ["convert", "-q", "-f", opts.format, "-O", "vmdk", "-o", `subformat=monolithicSparse,adapter_type=${qemuAdapter(opts.adapterType)}`, opts.input, opts.output];
  const r = await run(opts.tool, args, opts.signal);
  if (r === "missing") throw new ConversionToolMissingError(opts.source, formatName(opts.format), opts.tool);
  if (r.code !== 0) throw new ConversionFailedError(opts.source, formatName(opts.format), r.stderr, r.code);
}
