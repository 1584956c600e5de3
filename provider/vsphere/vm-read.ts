// Reading an instance's VM as vCenter has it (refresh, import, the base of an update):
// resolveVmId turns an instance uuid or a managed object id into a reference, readVm reads
// everything VmView holds in ONE RetrievePropertiesEx.
//
// The host's name comes in that same call. The VM's host is in `runtime.host`, a nested
// property, and a TraversalSpec's path must be a property of the managed object itself
// (the API reference: "Name of the property to use in order to select additional
// objects"), so the traversal goes through top-level properties only: VirtualMachine
// .resourcePool -> ResourcePool.owner (the cluster or standalone host's ComputeResource)
// -> ComputeResource.host. That reads the names of the cluster's hosts (a few dozen at
// most); the one equal to `runtime.host` is kept. A VM without a resource pool (a
// template) has no host name.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { DatastorePath } from "./datastore.js";
import { ManagedObjectNotFoundFault, NotFoundError, VSphereError } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { PropertyCollector, type PropertyFilterSpec, type RawObjectContent } from "./property.js";
import { arrayOf, bool, dataObject, int, long, moRef, str } from "./schema.js";
import { isSubtype } from "./soap/vim-schema.js";
import { MoRef, type VimValue } from "./soap/xml.js";
import type { PowerState } from "./vm-lifecycle.js";
import { METADATA_PREFIX, NIC_DEVICE_TYPES, type NicModel, type SharesLevel } from "./vm-spec.js";
import type { AllocationView, NicBackingView, VmDiskView, VmNicView, VmView } from "./vm-view.js";
import { VNC_ENABLED_KEY, VNC_PORT_KEY } from "./vnc.js";

/** The VM exists but vCenter cannot give its configuration (inaccessible, orphaned, being registered). */
export class VmConfigUnavailableError extends VSphereError {
  readonly code = "VmConfigUnavailable";
  constructor(readonly vm: MoRef) {
    super(`VM ${vm.value}: vCenter has no configuration for it (inaccessible or orphaned: its .vmx cannot be read)`);
  }
}

/** An id that is neither an instance uuid nor a VirtualMachine's managed object id. */
export class InvalidVmIdError extends VSphereError {
  readonly code = "InvalidVmId";
  constructor(readonly id: string) {
    super(`${JSON.stringify(id)} is not a VM id: want an instance uuid (8-4-4-4-12 hex digits) or a managed object id ("vm-123" or "VirtualMachine:vm-123")`);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The VM an id names (inventory.ts's findVm looks VMs up by a query object and gives a
 * summary; this takes the id strings users write and gives the reference, in one call): an instance uuid (SearchIndex.FindByUuid, one round trip, in
 * `datacenter` when given), or a managed object id checked to exist (one round trip).
 * undefined when no such VM exists.
 */
export async function resolveVmId(client: VimClient, datacenter: Datacenter | undefined, id: string): Promise<MoRef | undefined> {
  if (UUID.test(id)) {
    const searchIndex = client.serviceContent.searchIndex;
    if (!searchIndex) throw new NotFoundError(`${client.endpoint} has no SearchIndex`, "object");
    const found = await client.invoke("FindByUuid", searchIndex, { datacenter: datacenter?.ref, uuid: id.toLowerCase(), vmSearch: true, instanceUuid: true });
    return found === undefined || found === "" ? undefined : moRef.parse(found);
  }
  const ref = vmRef(id);
  try {
    await new PropertyCollector(client).get(ref, z.object({ name: str }));
    return ref;
  } catch (err) {
    if (err instanceof ManagedObjectNotFoundFault) return undefined;
    throw err;
  }
}

/** "vm-123" or "VirtualMachine:vm-123" as a reference; anything else is InvalidVmIdError. */
function vmRef(id: string): MoRef {
  if (!id.includes(":")) {
    if (!/^[\w.-]+$/.test(id)) throw new InvalidVmIdError(id);
    return new MoRef("VirtualMachine", id);
  }
  const ref = MoRef.parse(id);
  if (ref.type !== "VirtualMachine" || !/^[\w.-]+$/.test(ref.value)) throw new InvalidVmIdError(id);
  return ref;
}

// ---------------------------------------------------------------------------
// The read

const Shares = dataObject({ shares: int.optional(), level: str });
const Allocation = dataObject({ reservation: long.optional(), limit: long.optional(), shares: Shares.optional() });
const OptionValue = dataObject({ key: str, value: z.unknown().optional() });

/** What one read selects of a VirtualMachine; a property vCenter leaves unset is absent. */
const VmProps = z.object({
  name: str,
  "config.instanceUuid": str.optional(),
  "config.guestId": str.optional(),
  "config.annotation": str.optional(),
  "config.hardware.numCPU": int.optional(),
  "config.hardware.numCoresPerSocket": int.optional(),
  "config.hardware.memoryMB": int.optional(),
  "config.hardware.device": z.unknown().optional(),
  "config.cpuHotAddEnabled": bool.optional(),
  "config.memoryHotAddEnabled": bool.optional(),
  "config.cpuAllocation": Allocation.optional(),
  "config.memoryAllocation": Allocation.optional(),
  "config.extraConfig": arrayOf(OptionValue),
  "config.files.vmPathName": str.optional(),
  "runtime.powerState": str,
  "runtime.host": moRef.optional(),
  resourcePool: moRef.optional(),
});

/** The traversal to the hosts of the VM's cluster (see the file comment). */
function vmToHosts(): unknown[] {
  return [
    {
      $type: "TraversalSpec",
      type: "VirtualMachine",
      path: "resourcePool",
      skip: true,
      selectSet: [{ $type: "TraversalSpec", type: "ResourcePool", path: "owner", skip: true, selectSet: [{ $type: "TraversalSpec", type: "ComputeResource", path: "host", skip: false }] }],
    },
  ];
}

/** The read of the VM (and its host's name): alone (readVm), or beside another read in one call. */
export function readVmSpec(vm: MoRef): PropertyFilterSpec {
  return {
    propSet: [
      { type: "VirtualMachine", pathSet: Object.keys(VmProps.shape) },
      { type: "HostSystem", pathSet: ["name"] },
    ],
    objectSet: [{ obj: vm, selectSet: vmToHosts() }],
  };
}

/** The VM among the contents of a readVmSpec read; undefined when it is not there. */
export function vmViewIn(vm: MoRef, contents: readonly RawObjectContent[]): VmView | undefined {
  const own = contents.find((c) => c.obj.equals(vm));
  if (!own) return undefined;
  const p = VmProps.parse(own.props);
  const host = p["runtime.host"];
  const hostName = host ? contents.find((c) => c.obj.equals(host))?.props.name : undefined;
  return toView(vm, p, typeof hostName === "string" ? hostName : undefined);
}

/**
 * The VM as vCenter has it, in one round trip (its host's name included); undefined
 * when it is gone. Throws VmConfigUnavailableError for a VM without a configuration.
 */
export async function readVm(client: VimClient, vm: MoRef): Promise<VmView | undefined> {
  try {
    return vmViewIn(vm, await new PropertyCollector(client).retrieve([readVmSpec(vm)]));
  } catch (err) {
    if (err instanceof ManagedObjectNotFoundFault) return undefined;
    throw err;
  }
}

function toView(vm: MoRef, p: z.infer<typeof VmProps>, hostName: string | undefined): VmView {
  const instanceUuid = p["config.instanceUuid"];
  const vmxPath = p["config.files.vmPathName"];
  if (instanceUuid === undefined || vmxPath === undefined) throw new VmConfigUnavailableError(vm);
  const extraConfig = extraConfigOf(p["config.extraConfig"]);
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(extraConfig)) if (k.startsWith(METADATA_PREFIX)) metadata[k.slice(METADATA_PREFIX.length)] = v;
  const vncPort = Number(extraConfig[VNC_PORT_KEY]);
  const hw = devicesOf(p["config.hardware.device"]);
  return {
    vm,
    name: p.name,
    instanceUuid,
    guestId: p["config.guestId"] ?? "",
    annotation: p["config.annotation"] ?? "",
    cpus: p["config.hardware.numCPU"] ?? 0,
    coresPerSocket: p["config.hardware.numCoresPerSocket"] ?? 1,
    memoryMb: p["config.hardware.memoryMB"] ?? 0,
    cpuHotAdd: p["config.cpuHotAddEnabled"] ?? false,
    memoryHotAdd: p["config.memoryHotAddEnabled"] ?? false,
    cpuAllocation: allocationOf(p["config.cpuAllocation"]),
    memoryAllocation: allocationOf(p["config.memoryAllocation"]),
    powerState: p["runtime.powerState"] as PowerState,
    ...(p["runtime.host"] ? { host: p["runtime.host"] } : {}),
    ...(hostName !== undefined ? { hostName } : {}),
    ...(p.resourcePool ? { resourcePool: p.resourcePool } : {}),
    vmxPath,
    extraConfig,
    metadata,
    ...(Number.isInteger(vncPort) && vncPort > 0 ? { vncPort } : {}),
    vncEnabled: /^true$/i.test(extraConfig[VNC_ENABLED_KEY] ?? ""),
    ...hw,
  };
}

/** The VM's folder: where its .vmx is (`[ds] name`). */
export function vmFolderPath(view: Pick<VmView, "vmxPath">): DatastorePath {
  return DatastorePath.parse(view.vmxPath).parent;
}

/**
 * extraConfig as a map of strings. OptionValue.value is xsd:anyType: vCenter answers
 * every entry as xsd:string, whose text the parser gives; any other simple type is
 * text as well.
 */
function extraConfigOf(entries: Array<z.infer<typeof OptionValue>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) out[e.key] = typeof e.value === "string" ? e.value : "";
  return out;
}

/**
 * vCenter always fills a VM's allocations; absent fields read as its defaults for a new
 * VM (no reservation, unlimited, normal shares).
 */
function allocationOf(a: z.infer<typeof Allocation> | undefined): AllocationView {
  return {
    reservation: a?.reservation ?? 0,
    limit: a?.limit ?? -1,
    shares: { level: (a?.shares?.level ?? "normal") as SharesLevel | "custom", count: a?.shares?.shares ?? 0 },
  };
}

// ---------------------------------------------------------------------------
// Devices

const Device = dataObject({
  $type: str,
  key: int,
  controllerKey: int.optional(),
  unitNumber: int.optional(),
  busNumber: int.optional(),
  capacityInKB: long.optional(),
  capacityInBytes: long.optional(),
  macAddress: str.optional(),
  addressType: str.optional(),
  backing: z.unknown().optional(),
  connectable: dataObject({ startConnected: bool.optional(), connected: bool.optional() }).optional(),
});
type Device = z.infer<typeof Device>;

const FileBacking = dataObject({ $type: str.optional(), fileName: str.optional(), thinProvisioned: bool.optional(), parent: z.unknown().optional() });
const NetworkBacking = dataObject({ deviceName: str.optional(), network: moRef.optional() });
const DvPortBacking = dataObject({ port: dataObject({ switchUuid: str, portgroupKey: str.optional() }) });
const SerialBacking = dataObject({ $type: str.optional(), serviceURI: str.optional(), proxyURI: str.optional(), direction: str.optional() });

const MODEL_OF: ReadonlyMap<string, NicModel> = new Map(Object.entries(NIC_DEVICE_TYPES).map(([m, t]) => [t, m as NicModel]));

type Hardware = Pick<VmView, "disks" | "nics" | "cdroms" | "serialPorts" | "controllers">;

/** Sorts config.hardware.device into VmView's lists, each by key; each keeps the device object as read. */
function devicesOf(raw: unknown): Hardware {
  const list = (raw === undefined || raw === "" ? [] : Array.isArray(raw) ? raw : [raw]) as VimValue[];
  // By key, which is the order devices were added in: an edit on the simulator moves the
  // device to the end of the list, vCenter keeps its place.
  const devices = list.map((d) => ({ raw: d, dev: Device.parse(d) })).sort((a, b) => a.dev.key - b.dev.key);
  const typeOfKey = new Map(devices.map(({ dev }) => [dev.key, dev.$type]));
  const out: Hardware = { disks: [], nics: [], cdroms: [], serialPorts: [], controllers: [] };
  for (const { raw: device, dev } of devices) {
    const t = dev.$type;
    if (isSubtype(t, "VirtualController")) out.controllers.push({ key: dev.key, type: t, busNumber: dev.busNumber ?? 0 });
    else if (isSubtype(t, "VirtualDisk")) out.disks.push(diskOf(dev, device, typeOfKey));
    else if (isSubtype(t, "VirtualEthernetCard")) out.nics.push(nicOf(dev, device));
    else if (isSubtype(t, "VirtualCdrom")) {
      const b = FileBacking.safeParse(dev.backing ?? {});
      const iso = b.success && b.data.$type === "VirtualCdromIsoBackingInfo" ? b.data.fileName : undefined;
      out.cdroms.push({ key: dev.key, ...(iso !== undefined ? { iso } : {}) });
    } else if (isSubtype(t, "VirtualSerialPort")) {
      const b = SerialBacking.safeParse(dev.backing ?? {});
      const uri = b.success && b.data.$type === "VirtualSerialPortURIBackingInfo" ? b.data : undefined;
      out.serialPorts.push({
        key: dev.key,
        ...(uri?.serviceURI !== undefined ? { serviceUri: uri.serviceURI } : {}),
        ...(uri?.proxyURI !== undefined ? { proxyUri: uri.proxyURI } : {}),
        ...(uri?.direction !== undefined ? { direction: uri.direction } : {}),
      });
    }
  }
  return out;
}

function diskOf(dev: Device, device: VimValue, typeOfKey: ReadonlyMap<number, string>): VmDiskView {
  const b = FileBacking.parse(dev.backing ?? {});
  const parents: string[] = [];
  // The chain ends at a backing without a parent; a cycle cannot occur in vCenter's answer.
  for (let next = b.parent; next !== undefined && next !== ""; ) {
    const p = FileBacking.parse(next);
    if (p.fileName !== undefined) parents.push(p.fileName);
    next = p.parent;
  }
  const capacityKb = dev.capacityInKB ?? (dev.capacityInBytes !== undefined ? Math.floor(dev.capacityInBytes / 1024) : 0);
  return {
    key: dev.key,
    controllerKey: dev.controllerKey ?? -1,
    ...(dev.unitNumber !== undefined ? { unitNumber: dev.unitNumber } : {}),
    controllerType: (dev.controllerKey !== undefined ? typeOfKey.get(dev.controllerKey) : undefined) ?? "",
    fileName: b.fileName ?? "",
    capacityKb,
    parents,
    ...(b.thinProvisioned !== undefined ? { thinProvisioned: b.thinProvisioned } : {}),
    device,
  };
}

function nicOf(dev: Device, device: VimValue): VmNicView {
  return {
    key: dev.key,
    model: MODEL_OF.get(dev.$type) ?? dev.$type,
    ...(dev.macAddress !== undefined ? { macAddress: dev.macAddress } : {}),
    ...(dev.addressType !== undefined ? { addressType: dev.addressType } : {}),
    backing: nicBackingOf(dev.backing),
    ...(dev.connectable?.startConnected !== undefined ? { startConnected: dev.connectable.startConnected } : {}),
    ...(dev.connectable?.connected !== undefined ? { connected: dev.connectable.connected } : {}),
    device,
  };
}

function nicBackingOf(backing: unknown): NicBackingView {
  const type = typeof backing === "object" && backing !== null && "$type" in backing ? String((backing as { $type: unknown }).$type) : "";
  if (type === "VirtualEthernetCardNetworkBackingInfo") {
    const b = NetworkBacking.parse(backing);
    return { kind: "standard", networkName: b.deviceName ?? "", ...(b.network ? { network: b.network } : {}) };
  }
  if (type === "VirtualEthernetCardDistributedVirtualPortBackingInfo") {
    const b = DvPortBacking.parse(backing);
    return { kind: "distributed", switchUuid: b.port.switchUuid, portgroupKey: b.port.portgroupKey ?? "" };
  }
  return { kind: "other", type };
}
