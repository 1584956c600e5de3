// Instance state: what the state holds (the inputs as vCenter has them after a read,
// and what create learnt), how it is made from a VM as read (vm-read.ts), and the
// inputs turned into what the driver wants (vm-spec's NICs and allocations, vm-update's
// VmChanges) — including the VM the last inputs made, for the preview's power-cycle
// reasons. Pure: no vCenter calls.
import type { DriverConfig } from "../config.js";
import { DatastorePath } from "../vsphere/datastore.js";
import { MoRef } from "../vsphere/soap/xml.js";
import type { NicOptions, VmSpecOptions } from "../vsphere/vm-spec.js";
import type { VmChanges, VmView } from "../vsphere/vm-view.js";
import { POWER_STATES, powerInputOf, sharesOf, type Inputs, type NetworkInput } from "./instance-inputs.js";

export const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

/** The root disk as vCenter has it. */
export interface RootDiskState {
  fileName: string;
  capacityBytes: number;
  /** The backing chain's parents, nearest first: a linked clone's cached (sized) base. */
  parents: string[];
  /** The controller's vim25 type. */
  controller: string;
}

/** What the state holds: the inputs (as vCenter has them after a refresh) and what create learnt. */
export interface InstanceState extends Inputs {
  instanceUuid: string;
  /** The VM's managed object id (vm-123). */
  vmId: string;
  /** The VM's name in vCenter (its instance uuid, as Nova names VMs). */
  name: string;
  datacenter: string;
  clusterName: string;
  datastore: string;
  vmxPath: string;
  host: string | undefined;
  hostId: string | undefined;
  vncPort: number | undefined;
  vncHost: string | undefined;
  imageKind: "disk" | "iso" | undefined;
  adapterType: string | undefined;
  /** The linked-clone mode the VM was made with (the image's linkedClone, else vmware:useLinkedClone). */
  linkedClone: boolean | undefined;
  /** Whether the root disk is a delta on a cached base now (a grown linked clone is consolidated, as Nova's resize). */
  linkedCloneDisk: boolean;
  cachePrefix: string;
  guestIdActual: string;
  rootDisk: RootDiskState | undefined;
  macAddresses: string[];
  /** The storage policy's id, when placed by one. */
  storagePolicyId: string | undefined;
  serialPortUri: string | undefined;
  /** Why the last preview said the update needs a power cycle (computed by check). */
  powerCycle?: string[];
}

export const OUTPUT_KEYS = [
  "instanceUuid",
  "vmId",
  "name",
  "datacenter",
  "vmxPath",
  "host",
  "hostId",
  "vncPort",
  "vncHost",
  "imageKind",
  "adapterType",
  "linkedClone",
  "linkedCloneDisk",
  "cachePrefix",
  "guestIdActual",
  "rootDisk",
  "macAddresses",
  "storagePolicyId",
  "serialPortUri",
  "powerCycle",
];


/** The NICs as vm-spec wants them; with vmware:integrationBridge every NIC goes to that bridge (the seed's NSX mode). */
export function nicsOf(networks: NetworkInput[] | undefined, cfg: DriverConfig): NicOptions[] {
  return (networks ?? []).map((n, i) => {
    const bridge = cfg.integrationBridge;
    let backing: NicOptions["backing"];
    if (bridge) backing = { kind: "standard", networkName: bridge };
    else if (n.switchUuid !== undefined && n.portgroupKey !== undefined) backing = { kind: "distributed", switchUuid: n.switchUuid, portgroupKey: n.portgroupKey };
    else if (n.portGroup !== undefined) backing = { kind: "standard", networkName: n.portGroup };
    else if (cfg.flatNetworkBridge) backing = { kind: "standard", networkName: cfg.flatNetworkBridge };
    else throw new Error(`networks[${i}]: give portGroup, or switchUuid and portgroupKey`);
    return { backing, model: n.model, ...(n.macAddress ? { macAddress: n.macAddress } : {}) };
  });
}

export function allocations(r: Inputs): Pick<VmSpecOptions, "cpuAllocation" | "memoryAllocation"> {
  const cpu = clean({ reservation: r.cpuReservationMhz, limit: r.cpuLimitMhz, shares: sharesOf(r.cpuShares) });
  const mem = clean({ reservation: r.memoryReservationMb, limit: r.memoryLimitMb, shares: sharesOf(r.memoryShares) });
  return { ...(Object.keys(cpu).length ? { cpuAllocation: cpu } : {}), ...(Object.keys(mem).length ? { memoryAllocation: mem } : {}) };
}

export function annotationOf(displayName: string, urn: string | undefined): string {
  return `${displayName}\n\nManaged by Pulumi (pulumi-vmware-vcenter)${urn ? `: ${urn}` : ""}`;
}
export const displayNameOf = (annotation: string) => annotation.split("\n")[0] ?? "";

/** The network entry as the state keeps it: what the inputs can say of a NIC as read. */
export function networkOfNic(nic: VmView["nics"][number], wantedMac: boolean): NetworkInput {
  const b = nic.backing;
  const model = (["vmxnet3", "e1000", "e1000e"] as const).find((m) => m === nic.model) ?? "vmxnet3";
  const base: Record<string, unknown> =
    b.kind === "standard" ? { portGroup: b.networkName } : b.kind === "distributed" ? { switchUuid: b.switchUuid, portgroupKey: b.portgroupKey } : { portGroup: `(${b.type})` };
  return { ...base, model: nic.model === model ? model : (nic.model as NetworkInput["model"]), ...(wantedMac && nic.macAddress ? { macAddress: nic.macAddress.toLowerCase() } : {}) } as NetworkInput;
}

/** The state from the VM as read, over what the state knew (inputs and placement). */
export function stateOf(view: VmView, known: Partial<InstanceState> & Pick<InstanceState, "datacenter" | "clusterName">): InstanceState {
  const disk = view.disks[0];
  const datastore = DatastorePath.parse(view.vmxPath).datastore;
  const manualMacs = (known.networks ?? []).map((n) => n.macAddress !== undefined);
  const cpu = view.cpuAllocation;
  const mem = view.memoryAllocation;
  const sharesBack = (s: typeof cpu.shares, had: unknown) => (had === undefined ? undefined : s.level === "custom" ? s.count : s.level);
  const networks = view.nics.map((nic, i) => networkOfNic(nic, manualMacs[i] ?? false));
  const s: InstanceState = {
    ...(known as InstanceState),
    cpus: view.cpus,
    coresPerSocket: known.coresPerSocket === undefined && view.coresPerSocket === 1 ? undefined : view.coresPerSocket,
    memoryMb: view.memoryMb,
    ...(known.cpuHotAdd !== undefined || view.cpuHotAdd ? { cpuHotAdd: view.cpuHotAdd } : {}),
    ...(known.memoryHotAdd !== undefined || view.memoryHotAdd ? { memoryHotAdd: view.memoryHotAdd } : {}),
    ...(known.cpuReservationMhz !== undefined ? { cpuReservationMhz: cpu.reservation } : {}),
    ...(known.cpuLimitMhz !== undefined ? { cpuLimitMhz: cpu.limit } : {}),
    ...(known.cpuShares !== undefined ? { cpuShares: sharesBack(cpu.shares, known.cpuShares) } : {}),
    ...(known.memoryReservationMb !== undefined ? { memoryReservationMb: mem.reservation } : {}),
    ...(known.memoryLimitMb !== undefined ? { memoryLimitMb: mem.limit } : {}),
    ...(known.memoryShares !== undefined ? { memoryShares: sharesBack(mem.shares, known.memoryShares) } : {}),
    ...(known.rootDiskGb !== undefined && disk ? { rootDiskGb: Math.ceil(disk.capacityKb / (1024 * 1024)) } : {}),
    displayName: displayNameOf(view.annotation),
    metadata: view.metadata,
    ...(networks.length || known.networks ? { networks } : {}),
    powerState: powerInputOf(view.powerState),
    vnc: view.vncPort !== undefined,
    instanceUuid: view.instanceUuid,
    vmId: view.vm.value,
    name: view.name,
    datastore,
    vmxPath: view.vmxPath,
    host: view.hostName,
    hostId: view.host?.value,
    vncPort: view.vncPort,
    vncHost: view.vncPort !== undefined ? view.hostName : undefined,
    imageKind: known.imageKind,
    adapterType: known.adapterType,
    linkedCloneDisk: (disk?.parents.length ?? 0) > 0,
    cachePrefix: known.cachePrefix ?? "",
    guestIdActual: view.guestId,
    rootDisk: disk ? { fileName: disk.fileName, capacityBytes: disk.capacityKb * 1024, parents: disk.parents, controller: disk.controllerType } : undefined,
    macAddresses: view.nics.map((n) => n.macAddress ?? "").filter((m) => m !== ""),
    storagePolicyId: known.storagePolicyId,
    serialPortUri: view.serialPorts[0]?.serviceUri,
  };
  delete s.powerCycle;
  return JSON.parse(JSON.stringify(s)) as InstanceState;
}

/**
 * What an update wants of the VM, from the checked inputs. An adopted VM keeps the NICs
 * and metadata it has unless the inputs name them; a VM made here has exactly the inputs'.
 */
export function changesOf(n: Inputs, cfg: DriverConfig, displayName: string, adopting = false): VmChanges {
  return {
    ...hardwareChanges(n),
    ...allocations(n),
    ...(n.networks !== undefined || !adopting ? { nics: nicsOf(n.networks, cfg) } : {}),
    ...(n.metadata !== undefined || !adopting ? { metadata: n.metadata ?? {} } : {}),
    annotation: annotationOf(displayName, n.resourceUrn),
  };
}

/**
 * A VM as the last inputs made it (for the preview's power-cycle reasons): the flavor,
 * power state, guest and root disk (a delta on a base when it is a linked clone).
 */
export function previewView(o: Inputs, cfg: DriverConfig): VmView {
  const none = { reservation: 0, limit: -1, shares: { level: "normal" as const, count: 0 } };
  const image = o.image;
  const ide = image?.adapterType === "ide";
  const linked = image !== undefined && image.kind === "disk" && (image.linkedClone ?? cfg.useLinkedClone);
  const capacityKb = o.rootDiskGb !== undefined ? o.rootDiskGb * 1024 * 1024 : Math.ceil((image?.capacityBytes ?? 0) / 1024);
  return {
    vm: new MoRef("VirtualMachine", "preview"),
    name: "preview",
    instanceUuid: "",
    guestId: o.guestId ?? image?.osType ?? "otherGuest",
    annotation: "",
    cpus: o.cpus,
    coresPerSocket: o.coresPerSocket ?? 1,
    memoryMb: o.memoryMb,
    cpuHotAdd: o.cpuHotAdd ?? false,
    memoryHotAdd: o.memoryHotAdd ?? false,
    cpuAllocation: none,
    memoryAllocation: none,
    powerState: POWER_STATES[o.powerState ?? "on"],
    vmxPath: "[preview] preview/preview.vmx",
    extraConfig: {},
    metadata: {},
    vncEnabled: false,
    disks: [
      {
        key: 2000,
        controllerKey: ide ? 200 : 1000,
        unitNumber: 0,
        controllerType: ide ? "VirtualIDEController" : "VirtualLsiLogicController",
        fileName: "[preview] preview/preview.vmdk",
        capacityKb,
        parents: linked ? ["[preview] base.vmdk"] : [],
        device: {},
      },
    ],
    nics: [],
    cdroms: [],
    serialPorts: [],
    controllers: [],
  };
}

/** The flavor and power part of an update (what may need a power cycle). */
export function hardwareChanges(n: Inputs): VmChanges {
  return {
    cpus: n.cpus,
    coresPerSocket: n.coresPerSocket ?? 1,
    memoryMb: n.memoryMb,
    ...(n.cpuHotAdd !== undefined ? { cpuHotAdd: n.cpuHotAdd } : {}),
    ...(n.memoryHotAdd !== undefined ? { memoryHotAdd: n.memoryHotAdd } : {}),
    ...(n.rootDiskGb !== undefined ? { rootDiskKb: n.rootDiskGb * 1024 * 1024 } : {}),
    powerState: POWER_STATES[n.powerState],
  };
}

