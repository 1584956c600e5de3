// Standard port groups (on every host of a cluster, through each host's
// HostNetworkSystem) and distributed port groups (on a distributed switch), the
// way Nova's network_util does it.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { ManagedObjectNotFoundFault, NotFoundError } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { PropertyCollector } from "./property.js";
import { arrayOf, bool, dataObject, int, moRef, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";
import { runTask } from "./task.js";

/** One host's standard networking. */
export interface HostNetworking {
  host: MoRef;
  hostName: string;
  networkSystem: MoRef;
  vswitches: Array<{ name: string; pnicDevices: string[] }>;
  portgroups: Array<{ name: string; vlanId: number; vswitchName: string }>;
}

const HostProps = z.object({ name: str, "configManager.networkSystem": moRef });
const NetworkSystemProps = z.object({
  "networkInfo.vswitch": arrayOf(dataObject({ name: str, pnic: arrayOf(str) })),
  "networkInfo.portgroup": arrayOf(dataObject({ spec: dataObject({ name: str, vlanId: int, vswitchName: str }) })),
  "networkInfo.pnic": arrayOf(dataObject({ key: str, device: str })),
});

/** vSwitches, their physical NICs and port groups of each host. */
export async function getHostNetworking(client: VimClient, hosts: MoRef[]): Promise<HostNetworking[]> {
  const pc = new PropertyCollector(client);
  const hostProps = await pc.getMany(hosts, HostProps);
  const systems = await pc.getMany(
    hostProps.map((h) => h.props["configManager.networkSystem"]),
    NetworkSystemProps,
  );
  const bySystem = new Map(systems.map((s) => [s.obj.toString(), s.props]));
  return hostProps.map((h) => {
    const ns = h.props["configManager.networkSystem"];
    const info = bySystem.get(ns.toString());
    const deviceOf = new Map((info?.["networkInfo.pnic"] ?? []).map((p) => [p.key, p.device]));
    return {
      host: h.obj,
      hostName: h.props.name,
      networkSystem: ns,
      vswitches: (info?.["networkInfo.vswitch"] ?? []).map((v) => ({ name: v.name, pnicDevices: v.pnic.map((k) => deviceOf.get(k) ?? k) })),
      portgroups: (info?.["networkInfo.portgroup"] ?? []).map((p) => ({ name: p.spec.name, vlanId: p.spec.vlanId, vswitchName: p.spec.vswitchName })),
    };
  });
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
}

const portgroupSpec = (s: StandardPortGroupSpec) => ({ name: s.name, vlanId: s.vlanId, vswitchName: s.vswitchName, policy: {} });

/** Adds a standard port group to one host (HostNetworkSystem.AddPortGroup). */
export async function addStandardPortGroup(client: VimClient, networkSystem: MoRef, spec: StandardPortGroupSpec): Promise<void> {
  await client.invoke("AddPortGroup", networkSystem, { portgrp: portgroupSpec(spec) });
}

/** Changes a host's standard port group in place (VLAN, vSwitch). */
export async function updateStandardPortGroup(client: VimClient, networkSystem: MoRef, spec: StandardPortGroupSpec): Promise<void> {
  await client.invoke("UpdatePortGroup", networkSystem, { pgName: spec.name, portgrp: portgroupSpec(spec) });
}

/** Removes a standard port group from one host; ESXi refuses while powered-on VMs use it. */
export async function removeStandardPortGroup(client: VimClient, networkSystem: MoRef, name: string): Promise<void> {
  await client.invoke("RemovePortGroup", networkSystem, { pgName: name });
}

const NetworkByName = z.object({ name: str });

/** The datacenter's network object of that name (a standard port group's Network), if any. */
export async function findNetwork(client: VimClient, datacenter: Datacenter, name: string): Promise<MoRef | undefined> {
  const all = await new PropertyCollector(client).find(datacenter.networkFolder, "Network", NetworkByName);
  return all.find((n) => n.props.name === name && n.obj.type === "Network")?.obj;
}

/** VMs with a NIC on a network (standard or distributed). */
export async function networkVms(client: VimClient, network: MoRef): Promise<Array<{ ref: MoRef; name: string }>> {
  try {
    const { vm } = await new PropertyCollector(client).get(network, z.object({ vm: arrayOf(moRef) }));
    const names = await new PropertyCollector(client).getMany(vm, z.object({ name: str }));
    return names.map((n) => ({ ref: n.obj, name: n.props.name }));
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
    throw new NotFoundError(`distributed switch "${name}" not found in datacenter ${datacenter.name} (there are: ${names})`);
  }
  return { ref: hit.obj, name: hit.props.name, uuid: hit.props.uuid, portgroups: hit.props.portgroup };
}

/** Port binding: ephemeral (the seed's advice for nova-network), static (earlyBinding). */
export type PortBinding = "ephemeral" | "static";

/** A distributed port group as read back (vlanId undefined for trunk or private VLANs). */
export interface DistributedPortGroup {
  ref: MoRef;
  name: string;
  key: string;
  vlanId: number | undefined;
  binding: string;
  configVersion: string | undefined;
  switchRef: MoRef;
}

const PortgroupProps = z.object({
  name: str,
  key: str,
  "config.type": str.optional(),
  "config.configVersion": str.optional(),
  "config.distributedVirtualSwitch": moRef,
  "config.defaultPortConfig": dataObject({
    vlan: dataObject({ $type: str.optional(), vlanId: z.unknown().optional(), inherited: bool.optional() }).optional(),
  }).optional(),
});

/** Reads a distributed port group; undefined when it does not exist (any more). */
export async function getDistributedPortGroup(client: VimClient, ref: MoRef): Promise<DistributedPortGroup | undefined> {
  let p: z.infer<typeof PortgroupProps>;
  try {
    p = await new PropertyCollector(client).get(ref, PortgroupProps);
  } catch (err) {
    if (err instanceof ManagedObjectNotFoundFault) return undefined;
    throw err;
  }
  const vlan = p["config.defaultPortConfig"]?.vlan;
  const vlanId = vlan && vlan.$type !== "VmwareDistributedVirtualSwitchTrunkVlanSpec" && typeof vlan.vlanId === "string" ? Number(vlan.vlanId) : undefined;
  return {
    ref,
    name: p.name,
    key: p.key,
    vlanId: vlanId ?? (vlan ? undefined : 0),
    binding: p["config.type"] ?? "",
    configVersion: p["config.configVersion"],
    switchRef: p["config.distributedVirtualSwitch"],
  };
}

const vlanSetting = (vlanId: number) => ({
  $type: "VMwareDVSPortSetting",
  vlan: { $type: "VmwareDistributedVirtualSwitchVlanIdSpec", inherited: false, vlanId },
});

/** Adds a port group to a distributed switch and returns it. */
export async function createDistributedPortGroup(
  client: VimClient,
  dvs: DistributedSwitch,
  spec: { name: string; vlanId: number; binding: PortBinding },
): Promise<DistributedPortGroup> {
  await runTask(client, "AddDVPortgroup_Task", dvs.ref, {
    spec: [
      {
        name: spec.name,
        numPorts: spec.binding === "static" ? 8 : undefined,
        defaultPortConfig: vlanSetting(spec.vlanId),
        type: spec.binding === "static" ? "earlyBinding" : "ephemeral",
        autoExpand: spec.binding === "static" ? true : undefined,
      },
    ],
  });
  // AddDVPortgroup_Task returns nothing: find the new port group by name.
  const { portgroup } = await new PropertyCollector(client).get(dvs.ref, z.object({ portgroup: arrayOf(moRef) }));
  const named = await new PropertyCollector(client).getMany(portgroup, z.object({ name: str }));
  const ref = named.find((n) => n.props.name === spec.name)?.obj;
  const pg = ref && (await getDistributedPortGroup(client, ref));
  if (!pg) throw new NotFoundError(`distributed port group "${spec.name}" was added to ${dvs.name} but cannot be found`);
  return pg;
}

/** Sets the VLAN of a distributed port group. */
export async function setDistributedPortGroupVlan(client: VimClient, pg: DistributedPortGroup, vlanId: number): Promise<void> {
  await runTask(client, "ReconfigureDVPortgroup_Task", pg.ref, {
    spec: { configVersion: pg.configVersion, name: pg.name, defaultPortConfig: vlanSetting(vlanId), type: pg.binding || undefined },
  });
}

/** Deletes a distributed port group (Destroy_Task). */
export async function destroyDistributedPortGroup(client: VimClient, ref: MoRef): Promise<void> {
  await runTask(client, "Destroy_Task", ref);
}
