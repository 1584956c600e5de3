// VNC ports for instances' consoles (Nova's vm_util get_vnc_port, and better): the
// seed opens 5900-6105 on every ESXi host, and a VM's console listens on the port in
// its `RemoteDisplay.vnc.port` extraConfig on whatever host runs it. So a port must be
// free among every VM that may run on the same hosts — DRS moves VMs within a cluster —
// and Nova's in-process lock does not keep two processes apart: callers pick, write,
// read back and pick again on a collision (pickVncPort spreads their first choices).
//
// One property-collector traversal reads every VM's extraConfig and host: a keyed path
// (`config.extraConfig["RemoteDisplay.vnc.port"]`) would carry less, but the simulator
// answers it InvalidProperty, so the whole extraConfig is read, as Nova does.
import { createHash } from "node:crypto";
import { z } from "zod";
import type { VimClient } from "./client.js";
import { VSphereError } from "./errors.js";
import { vmsUnder } from "./inventory-cache.js";
import { PropertyCollector, type PropertyFilterSpec, type RawObjectContent } from "./property.js";
import { arrayOf, dataObject, moRef, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";

/** The seed's range, both ends included. */
export const VNC_PORTS = { first: 5900, last: 6105 } as const;

export const VNC_PORT_KEY = "RemoteDisplay.vnc.port";
export const VNC_ENABLED_KEY = "RemoteDisplay.vnc.enabled";

export interface VncUse {
  vm: MoRef;
  name: string;
  /** The host it runs on (absent for a VM whose host is unknown). */
  host: MoRef | undefined;
  port: number;
  enabled: boolean;
}

const VmProps = z.object({
  name: str,
  "runtime.host": moRef.optional(),
  // Absent for a VM whose configuration cannot be read.
  "config.extraConfig": arrayOf(dataObject({ key: str, value: z.unknown().optional() })).optional(),
});

/** The read of every VM's VNC port (and host): alone (vncPortsInUse), or beside another read in one call. */
export function vncScanSpec(client: VimClient): PropertyFilterSpec {
  return {
    propSet: [{ type: "VirtualMachine", pathSet: Object.keys(VmProps.shape) }],
    objectSet: [vmsUnder(client.serviceContent.rootFolder)],
  };
}

/** The VMs with a VNC port among the contents of a vncScanSpec read. */
export function vncUsesIn(contents: readonly RawObjectContent[]): VncUse[] {
  const out: VncUse[] = [];
  for (const c of contents) {
    if (c.obj.type !== "VirtualMachine") continue;
    const p = VmProps.parse(c.props);
    const extra = new Map((p["config.extraConfig"] ?? []).map((o) => [o.key, o.value === undefined || o.value === null ? "" : String(o.value)]));
    const port = Number(extra.get(VNC_PORT_KEY));
    if (!Number.isInteger(port) || port <= 0) continue;
    out.push({ vm: c.obj, name: p.name, host: p["runtime.host"], port, enabled: /^true$/i.test(extra.get(VNC_ENABLED_KEY) ?? "") });
  }
  return out;
}

/** Every VM with a VNC port in its extraConfig, in one round trip. */
export async function vncPortsInUse(client: VimClient): Promise<VncUse[]> {
  return vncUsesIn(await new PropertyCollector(client).retrieve([vncScanSpec(client)]));
}

/** Every port of the range is taken. */
export class NoFreeVncPortError extends VSphereError {
  readonly code = "NoFreeVncPort";
  constructor(readonly range: { first: number; last: number }) {
    super(`no free VNC port in ${range.first}-${range.last}: every one is taken by a VM (RemoteDisplay.vnc.port); delete VMs or widen the range opened on the hosts`);
  }
}

/**
 * A free port of the range. The search starts at a place derived from `seed` (e.g. the
 * new VM's name), so two processes creating different VMs at the same moment rarely pick
 * the same port; `taken` are the ports in use (and any a caller lost a race for).
 */
export function pickVncPort(taken: Iterable<number>, seed: string, range: { first: number; last: number } = VNC_PORTS): number {
  const used = new Set(taken);
  const size = range.last - range.first + 1;
  const start = createHash("sha256").update(seed).digest().readUInt32BE(0) % size;
  for (let i = 0; i < size; i++) {
    const port = range.first + ((start + i) % size);
    if (!used.has(port)) return port;
  }
  throw new NoFreeVncPortError(range);
}

/**
 * The ports taken where a new VM may run: by VMs on any of `hosts` (a cluster's: DRS
 * moves VMs between them), and by VMs whose host is unknown (they may be anywhere).
 */
export function portsTakenOn(uses: readonly VncUse[], hosts: readonly MoRef[]): number[] {
  const scope = new Set(hosts.map((h) => h.toString()));
  return uses.filter((u) => u.host === undefined || scope.has(u.host.toString())).map((u) => u.port);
}
