// Standard port groups (on every host of a cluster, through each host's
// HostNetworkSystem) and distributed port groups (on a distributed switch), the
// way Nova's network_util does it. Each function costs the fewest round trips the
// API allows; writes invalidate what the per-client inventory cache holds.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { ManagedObjectNotFoundFault, NotFoundError, VimFault } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import {
  PORTGROUP_PROPS,
  inventoryCache,
  readHosts,
  toPortgroupNode,
  traversal,
  type DistributedPortGroupNode,
  type HostNetworking,
} from "./inventory-cache.js";
import { PropertyCollector } from "./property.js";
import { arrayOf, moRef, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";
import { waitForTask } from "./task.js";

export type { HostNetworking, HostPortGroup } from "./inventory-cache.js";

/** vSwitches, their physical NICs and port groups of each host (one round trip). */
export async function getHostNetworking(client: VimClient, hosts: MoRef[]): Promise<HostNetworking[]> {
  const { hosts: read } = await readHosts(client, hosts, false);
  await inventoryCache(client).remember(read);
  return read;
}

/**
 * The vSwitch that uses a physical NIC (Nova's VlanManager: vlan_interface names
 * the NIC, its vSwitch takes the port groups). Undefined when none does.
 */
export function vswitchForNic(h: HostNetworking, device: string): string | undefined {
  return h.vswitches.find((v) => v.pnicDevices.includes(device))?.name;
}

/** A standard port group as a host holds it. */
export interface StandardPortGroupSpec {
  name: string;
  vlanId: number;
  vswitchName: string;
  /**
   * The port group's own HostNetworkPolicy (security, teaming, shaping overrides).
   * ESXi replaces the whole spec: an update must send back the policy it read,
   * or the overrides are reset. Default: none (inherit the vSwitch's).
   */
  policy?: Record<string, unknown> | undefined;
}

/** Where a standard port group is written: a host's network system (and the host, for the cache). */
export type HostTarget = MoRef | { host: MoRef; networkSystem: MoRef };

// HostPortGroupSpec, vim25 field order: name, vlanId, vswitchName, policy (required).
const portgroupSpec = (s: StandardPortGroupSpec) => ({ name: s.name, vlanId: s.vlanId, vswitchName: s.vswitchName, policy: s.policy ?? {} });

function written(client: VimClient, target: HostTarget): MoRef {
  if ("networkSystem" in target) {
    inventoryCache(client).invalidateHosts([target.host]);
    return target.networkSystem;
  }
  inventoryCache(client).invalidateAll(); // which host is not known
  return target;
}

/** Adds a standard port group to one host (HostNetworkSystem.AddPortGroup). */
export async function addStandardPortGroup(client: VimClient, target: HostTarget, spec: StandardPortGroupSpec): Promise<void> {
  try {
    await client.invoke("AddPortGroup", "networkSystem" in target ? target.networkSystem : target, { portgrp: portgroupSpec(spec) });
  } finally {
    written(client, target);
  }
}

/**
 * Changes a host's standard port group in place. Pass the policy read from the
 * host (HostNetworking.portgroups[].policy) to keep its overrides.
 */
export async function updateStandardPortGroup(client: VimClient, target: HostTarget, spec: StandardPortGroupSpec): Promise<void> {
  try {
    await client.invoke("UpdatePortGroup", "networkSystem" in target ? target.networkSystem : target, { pgName: spec.name, portgrp: portgroupSpec(spec) });
  } finally {
    written(client, target);
  }
}

/** Removes a standard port group from one host; ESXi refuses while powered-on VMs use it. */
export async function removeStandardPortGroup(client: VimClient, target: HostTarget, name: string): Promise<void> {
  try {
    await client.invoke("RemovePortGroup", "networkSystem" in target ? target.networkSystem : target, { pgName: name });
  } finally {
    written(client, target);
  }
}

const NetworkByName = z.object({ name: str });

/** The datacenter's network object of that name (a standard port group's Network), if any. */
export async function findNetwork(client: VimClient, datacenter: Datacenter, name: string): Promise<MoRef | undefined> {
  const all = await new PropertyCollector(client).find(datacenter.networkFolder, "Network", NetworkByName);
  return all.find((n) => n.props.name === name && n.obj.type === "Network")?.obj;
}

/**
 * The Network object of a standard port group, seen from the hosts that have it
 * (HostSystem.network), with the hosts' networking: one round trip. vCenter can
 * list the Network a moment after the host change, so `waitMs` reads again, with
 * growing pauses, until it shows or the time is up.
 */
export async function standardNetworkOf(
  client: VimClient,
  hosts: MoRef[],
  name: string,
  waitMs = 0,
): Promise<{ network: MoRef | undefined; hosts: HostNetworking[] }> {
  const deadline = Date.now() + waitMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2000)) {
    const { hosts: read, networks } = await readHosts(client, hosts, true);
    await inventoryCache(client).remember(read);
    const network = [...networks.values()].find((n) => n.name === name && n.ref.type === "Network")?.ref;
    const expected = read.some((h) => h.portgroups.some((p) => p.name === name));
    if (network || !expected || Date.now() + pause > deadline) return { network, hosts: read };
    await new Promise((r) => setTimeout(r, pause));
  }
}

/** VMs with a NIC on a network (standard or distributed): one round trip. */
export async function networkVms(client: VimClient, network: MoRef): Promise<Array<{ ref: MoRef; name: string }>> {
  try {
    const contents = await new PropertyCollector(client).retrieve([
      {
        propSet: [
          { type: network.type, pathSet: ["name"] },
          { type: "VirtualMachine", pathSet: ["name"] },
        ],
        objectSet: [{ obj: network, skip: false, selectSet: [traversal("networkVms", "Network", "vm")] }],
      },
    ]);
    if (!contents.some((c) => c.obj.equals(network))) return [];
    return contents
      .filter((c) => c.obj.type === "VirtualMachine")
      .map((c) => ({ ref: c.obj, name: NetworkByName.parse(c.props).name }));
  } catch (err) {
    if (err instanceof ManagedObjectNotFoundFault) return [];
    throw err;
  }
}

/** A distributed switch and its port groups. */
export interface DistributedSwitch {
  ref: MoRef;
  name: string;
  uuid: string;
  portgroups: MoRef[];
}

const SwitchProps = z.object({ name: str, uuid: str, portgroup: arrayOf(moRef) });

/** A distributed switch by name in the datacenter; the error lists the switches there are. */
export async function getDistributedSwitch(client: VimClient, datacenter: Datacenter, name: string): Promise<DistributedSwitch> {
  const all = await new PropertyCollector(client).find(datacenter.networkFolder, "DistributedVirtualSwitch", SwitchProps);
  const hit = all.find((s) => s.props.name === name);
  if (!hit) {
    const names = all.map((s) => s.props.name).join(", ") || "none";
    throw new NotFoundError(`distributed switch "${name}" not found in datacenter ${datacenter.name} (there are: ${names})`, "switch", name);
  }
  return { ref: hit.obj, name: hit.props.name, uuid: hit.props.uuid, portgroups: hit.props.portgroup };
}

/** Port binding: ephemeral (the seed's advice for nova-network), static (earlyBinding). */
export type PortBinding = "ephemeral" | "static";

/** vim25's DistributedVirtualPortgroupPortgroupType for a binding, and back. */
export const bindingType = (b: PortBinding): string => (b === "static" ? "earlyBinding" : "ephemeral");
export const bindingOf = (type: string): string => (type === "earlyBinding" ? "static" : type === "ephemeral" ? "ephemeral" : type);

/** A distributed port group as read back (vlanId undefined for trunk or private VLANs). */
export interface DistributedPortGroup {
  ref: MoRef;
  name: string;
  key: string;
  vlanId: number | undefined;
  /** vim25's type: "ephemeral", "earlyBinding" (static) or "lateBinding". */
  binding: string;
  configVersion: string | undefined;
  switchRef: MoRef;
}

const fromNode = (n: DistributedPortGroupNode): DistributedPortGroup => ({
  ref: n.ref,
  name: n.name,
  key: n.key,
  vlanId: n.vlanId,
  binding: n.binding,
  configVersion: n.configVersion,
  switchRef: n.switchRef,
});

/** Reads a distributed port group; undefined when it does not exist (any more). One round trip. */
export async function getDistributedPortGroup(client: VimClient, ref: MoRef): Promise<DistributedPortGroup | undefined> {
  const contents = await new PropertyCollector(client).retrieve([
    { propSet: [{ type: "DistributedVirtualPortgroup", pathSet: PORTGROUP_PROPS }], objectSet: [{ obj: ref }], reportMissingObjectsInResults: true },
  ]);
  const c = contents.find((o) => o.obj.equals(ref) && o.missing.length === 0);
  return c ? fromNode(toPortgroupNode(c)) : undefined;
}

// VMwareDVSPortSetting with only the VLAN set: other settings stay as they are.
const vlanSetting = (vlanId: number) => ({
  $type: "VMwareDVSPortSetting",
  vlan: { $type: "VmwareDistributedVirtualSwitchVlanIdSpec", inherited: false, vlanId },
});

const TaskState = z.object({ "info.state": str });

/**
 * Adds a port group to a distributed switch and returns it: the task, then one
 * read of its state together with the switch's port groups.
 */
export async function createDistributedPortGroup(
  client: VimClient,
  dvs: { ref: MoRef; name: string },
  spec: { name: string; vlanId: number; binding: PortBinding },
): Promise<DistributedPortGroup> {
  inventoryCache(client).invalidateSwitches();
  // DVPortgroupConfigSpec, vim25 field order.
  const task = moRef.parse(
    await client.invoke("AddDVPortgroup_Task", dvs.ref, {
      spec: [
        {
          name: spec.name,
          numPorts: spec.binding === "static" ? 8 : undefined,
          defaultPortConfig: vlanSetting(spec.vlanId),
          type: bindingType(spec.binding),
          autoExpand: spec.binding === "static" ? true : undefined,
        },
      ],
    }),
  );
  const read = () =>
    new PropertyCollector(client).retrieve([
      { propSet: [{ type: "Task", pathSet: ["info.state"] }], objectSet: [{ obj: task }] },
      {
        propSet: [{ type: "DistributedVirtualPortgroup", pathSet: PORTGROUP_PROPS }],
        objectSet: [{ obj: dvs.ref, skip: true, selectSet: [traversal("dvsPortgroups", "DistributedVirtualSwitch", "portgroup")] }],
      },
    ]);
  let contents = await read();
  const state = contents.find((c) => c.obj.equals(task));
  if (!state || TaskState.parse(state.props)["info.state"] !== "success") {
    await waitForTask(client, task); // throws the task's fault
    contents = await read();
  }
  const hit = contents.filter((c) => c.obj.type === "DistributedVirtualPortgroup").map(toPortgroupNode).find((p) => p.name === spec.name);
  if (!hit) throw new NotFoundError(`distributed port group "${spec.name}" was added to ${dvs.name} but cannot be found`, "portgroup", spec.name);
  return fromNode(hit);
}

/**
 * Changes a distributed port group's VLAN and/or binding in place
 * (ReconfigureDVPortgroup_Task; vCenter changes the binding type in place). A
 * stale configVersion (ConcurrentAccess) is read again and retried once.
 */
export async function reconfigureDistributedPortGroup(
  client: VimClient,
  pg: DistributedPortGroup,
  change: { vlanId?: number | undefined; binding?: PortBinding | undefined },
): Promise<void> {
  inventoryCache(client).invalidateSwitches();
  const spec = (p: DistributedPortGroup) => ({
    configVersion: p.configVersion,
    name: p.name,
    numPorts: change.binding === "static" && bindingType(change.binding) !== p.binding ? 8 : undefined,
    // Sent even when only the binding changes: what a spec leaves out is not always kept (the simulator resets it).
    defaultPortConfig: (change.vlanId ?? p.vlanId) === undefined ? undefined : vlanSetting((change.vlanId ?? p.vlanId)!),
    type: change.binding ? bindingType(change.binding) : p.binding || undefined,
    autoExpand: change.binding === "static" && bindingType(change.binding) !== p.binding ? true : undefined,
  });
  const run = async (p: DistributedPortGroup) => {
    const task = moRef.parse(await client.invoke("ReconfigureDVPortgroup_Task", p.ref, { spec: spec(p) }));
    await waitForTask(client, task);
  };
  try {
    await run(pg);
  } catch (err) {
    if (!(err instanceof VimFault) || err.code !== "ConcurrentAccess") throw err;
    const again = await getDistributedPortGroup(client, pg.ref);
    if (!again) throw err;
    await run(again);
  }
}

/** Sets the VLAN of a distributed port group. */
export async function setDistributedPortGroupVlan(client: VimClient, pg: DistributedPortGroup, vlanId: number): Promise<void> {
  await reconfigureDistributedPortGroup(client, pg, { vlanId });
}

/** Deletes a distributed port group (Destroy_Task). */
export async function destroyDistributedPortGroup(client: VimClient, ref: MoRef): Promise<void> {
  inventoryCache(client).invalidateSwitches();
  const task = moRef.parse(await client.invoke("Destroy_Task", ref));
  await waitForTask(client, task);
}
