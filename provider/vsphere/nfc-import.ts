// A streamOptimized disk into a datastore the way vCenter takes one, as Nova's
// VMware driver does it: ImportVApp of a throwaway "shadow" VM that has just that
// disk, the disk's bytes sent to the HttpNfcLease's device URL, progress told while
// they go, the lease completed (or aborted on any failure), then the VM unregistered
// so its disk can be moved into the image cache.
//
// No OVF is involved: the import spec is a hand-built VirtualMachineConfigSpec with
// one disk on a controller of the image's adapter type, so the descriptor vCenter
// writes says the right ddb.adapterType.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { DatastorePath, deleteFile } from "./datastore.js";
import { ManagedObjectNotFoundFault, OutcomeUnknownError, VSphereError, describeCause, faultFromLocalized } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { PropertyCollector, UpdateWaiter } from "./property.js";
import { arrayOf, bool, dataObject, int, long, moRef, str } from "./schema.js";
import type { MoRef, VimValue } from "./soap/xml.js";
import { runTask } from "./task.js";
import { unregisterVm, vmExists } from "./vm-lifecycle.js";
import { uploadToUrl, type ChecksumAlgorithm, type StreamResult, type UploadSource } from "./transfer.js";
import type { AdapterType } from "./vmdk.js";

export interface StreamOptimizedImport {
  datacenter: Datacenter;
  /** Where the shadow VM runs (the cluster's root resource pool, as Nova). */
  resourcePool: MoRef;
  /** Its inventory folder (default: the datacenter's VM folder). */
  folder?: MoRef;
  /** The datastore its files go to: a name, or a Datastore reference. */
  datastore: string | MoRef;
  /** The shadow VM's name, which is also its folder's and its disk's: make it unique. */
  name: string;
  /** The disk's capacity (a stream announcing a larger one grows it). */
  capacityBytes: number;
  adapterType: AdapterType;
  /** How the imported disk is allocated (default thin: a cached base disk is only read and copied). */
  provisioning?: DiskProvisioning;
  /** The streamOptimized VMDK's bytes, read once. */
  stream: UploadSource;
  /** Its length in bytes (sent as Content-Length and checked). */
  length: number;
  onProgress?: (sent: number, total: number) => void;
  /** Digests computed on the way (default sha256). */
  checksums?: ChecksumAlgorithm[];
  /** HttpNfcLeaseProgress at least this often while bytes go (default 5 s; vCenter times a lease out after ~5 min without). */
  progressIntervalMs?: number;
  /** Give up when the lease is not ready after this long (default 10 min). */
  readyTimeoutMs?: number;
}

export interface ImportedDisk {
  /** The imported disk's descriptor, "[ds] name/name.vmdk". */
  disk: DatastorePath;
  /** The shadow VM's folder (its .vmx and the disk). */
  vmFolder: DatastorePath;
  /** The shadow VM, registered until release(). */
  vm: MoRef;
  /** Bytes sent and their digests. */
  transfer: StreamResult;
  /**
   * Unregisters the shadow VM (its files stay, so the disk can be moved into the
   * cache); with deleteFolder, then deletes its folder and everything left in it.
   */
  release(opts?: { deleteFolder?: boolean }): Promise<void>;
}

/** The import failed; the lease was aborted and the shadow VM and its files removed (or `leftover` says what could not be). */
export class NfcImportError extends VSphereError {
  readonly code = "NfcImportFailed";
  constructor(
    readonly vmName: string,
    readonly stage: "import" | "lease" | "upload" | "complete",
    override readonly cause: unknown,
    /** What cleanup could not remove, if anything (datastore paths or VM references). */
    readonly leftover: string[] = [],
  ) {
    super(
      `importing disk ${vmName} through an NFC lease failed during ${stage}: ${describeCause(cause)}` +
        (leftover.length ? `; could not remove ${leftover.join(", ")}: delete them by hand` : "; the lease was aborted and nothing was left behind"),
    );
  }
}

// ---------------------------------------------------------------------------
// The import spec

/** vCenter's allocations of a flat disk: thin, thick lazily zeroed, thick eagerly zeroed. */
export type DiskProvisioning = "thin" | "thick" | "eagerZeroedThick";

/** The controller a disk of each adapter type sits on (vim25 type name). */
export const CONTROLLER_TYPES: Readonly<Record<AdapterType, string>> = {
  ide: "VirtualIDEController",
  busLogic: "VirtualBusLogicController",
  lsiLogic: "VirtualLsiLogicController",
  lsiLogicsas: "VirtualLsiLogicSASController",
  paraVirtual: "ParaVirtualSCSIController",
};

/** Every VM vCenter creates has IDE controllers 200 and 201: an IDE disk goes on the first, none is added. */
const IDE_CONTROLLER_KEY = 200;
const NEW_CONTROLLER_KEY = -100;
const NEW_DISK_KEY = -101;

/** The VirtualMachineImportSpec of a one-disk shadow VM (vim25 names, schema order). */
export function shadowImportSpec(
  name: string,
  datastoreName: string,
  capacityBytes: number,
  adapterType: AdapterType,
  resourcePool: MoRef,
  provisioning: DiskProvisioning = "thin",
): Record<string, unknown> {
  const root = `[${datastoreName}]`;
  const ide = adapterType === "ide";
  const controllerKey = ide ? IDE_CONTROLLER_KEY : NEW_CONTROLLER_KEY;
  const deviceChange: Array<Record<string, unknown>> = [];
  if (!ide) {
    deviceChange.push({
      operation: "add",
      device: { $type: CONTROLLER_TYPES[adapterType], key: NEW_CONTROLLER_KEY, busNumber: 0, sharedBus: "noSharing" },
    });
  }
  deviceChange.push({
    operation: "add",
    fileOperation: "create",
    device: {
      $type: "VirtualDisk",
      key: NEW_DISK_KEY,
      // An empty path below the datastore: vCenter names it <vm>/<vm>.vmdk.
      backing: {
        $type: "VirtualDiskFlatVer2BackingInfo",
        fileName: root,
        diskMode: "persistent",
        thinProvisioned: provisioning === "thin",
        ...(provisioning === "eagerZeroedThick" ? { eagerlyScrub: true } : {}),
      },
      controllerKey,
      unitNumber: 0,
      // At least 1 KB, as Nova: a tiny image still makes a disk.
      capacityInKB: Math.max(1, Math.ceil(capacityBytes / 1024)),
    },
  });
  return {
    $type: "VirtualMachineImportSpec",
    configSpec: {
      name,
      guestId: "otherGuest",
      files: { vmPathName: root },
      numCPUs: 1,
      memoryMB: 128,
      deviceChange,
    },
    resPoolEntity: resourcePool,
  };
}

// ---------------------------------------------------------------------------
// The lease

const DeviceUrl = dataObject({
  key: str.optional(),
  importKey: str.optional(),
  url: str,
  /** SHA-1 of the certificate of the host the URL names, as vCenter knows it. */
  sslThumbprint: str.optional(),
  disk: bool.optional(),
  targetId: str.optional(),
});
const LeaseInfo = dataObject({ entity: moRef.optional(), deviceUrl: arrayOf(DeviceUrl), totalDiskCapacityInKB: long.optional(), leaseTimeout: int.optional() });
type LeaseInfo = z.infer<typeof LeaseInfo>;

/** Waits (WaitForUpdatesEx, no polling) until the lease leaves `initializing`; its error state is its fault. */
async function whenReady(client: VimClient, lease: MoRef, timeoutMs: number): Promise<LeaseInfo> {
  const waiter = await UpdateWaiter.create(client);
  try {
    await waiter.watch(lease, ["state", "info", "error"]);
    const seen: Record<string, VimValue | undefined> = {};
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // The first answer is the lease as it is now; the next ones come when it changes.
      const left = deadline - Date.now();
      const changes = (await waiter.next(Math.max(1, Math.min(60, Math.ceil(left / 1000))))).get(lease.toString());
      if (changes) Object.assign(seen, changes);
      const state = seen.state;
      if (state === "ready") return LeaseInfo.parse(seen.info ?? {});
      if (state === "error") throw faultFromLocalized(seen.error);
      if (state !== undefined && state !== "initializing") throw new Error(`the lease ${lease.value} is ${String(state)} before any upload`);
      if (Date.now() >= deadline) throw new Error(`the lease ${lease.value} was still initializing after ${(timeoutMs / 1000).toFixed(1)} s`);
    }
  } finally {
    await waiter.destroy();
  }
}

/**
 * Tells the lease how far the upload is: every `intervalMs` (skipped while a call is
 * still out, so a slow vCenter is not sent a queue of them), and when it crosses a
 * quarter. Calls go one at a time; a failed one does not stop the upload (the lease
 * may have timed out: the upload or HttpNfcLeaseComplete then says so).
 */
class ProgressReporter {
  private last = -1;
  private chain: Promise<void> = Promise.resolve();
  private pending = 0;
  private timer: NodeJS.Timeout;
  private percent = 0;

  constructor(
    private readonly client: VimClient,
    private readonly lease: MoRef,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => {
      if (this.pending === 0) this.send(this.percent);
    }, intervalMs);
    this.timer.unref();
  }

  update(sent: number, total: number): void {
    this.percent = total > 0 ? Math.min(100, Math.floor((sent * 100) / total)) : 100;
    if (Math.floor(this.percent / 25) > Math.floor(Math.max(0, this.last) / 25)) this.send(this.percent);
  }

  private send(percent: number): void {
    this.last = percent;
    this.pending++;
    this.chain = this.chain
      .then(() => this.client.invoke("HttpNfcLeaseProgress", this.lease, { percent }))
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        this.pending--;
      });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.chain;
  }
}

// ---------------------------------------------------------------------------
// The shadow VM

const DiskDevice = dataObject({
  $type: str.optional(),
  key: int,
  controllerKey: int.optional(),
  backing: dataObject({ $type: str.optional(), fileName: str.optional() }).optional(),
});
const VmFiles = z.object({ "config.files.vmPathName": str, "config.hardware.device": arrayOf(DiskDevice) });

/** The VM's disk descriptor and folder. */
async function readVmFiles(client: VimClient, vm: MoRef): Promise<{ disk: DatastorePath; vmFolder: DatastorePath }> {
  const props = await new PropertyCollector(client).get(vm, VmFiles);
  const disk = props["config.hardware.device"].find((d) => d.$type === "VirtualDisk" && d.backing?.fileName);
  if (!disk?.backing?.fileName) throw new Error(`the shadow VM ${vm.value} has no disk`);
  return { disk: DatastorePath.parse(disk.backing.fileName), vmFolder: DatastorePath.parse(props["config.files.vmPathName"]).parent };
}

async function datastoreName(client: VimClient, datastore: string | MoRef): Promise<string> {
  if (typeof datastore === "string") return datastore;
  return (await new PropertyCollector(client).get(datastore, z.object({ name: str }))).name;
}

/**
 * A device URL names the ESXi host that takes the bytes (`*`: the host the client
 * reached, i.e. vCenter, whose TLS policy then applies). That host has its own
 * certificate, which vCenter vouches for by its SHA-1 in the lease: trusted by that
 * (or by a CA), never by vCenter's caFile-only, insecure or pinned-thumbprint policy.
 */
function trustLeaseHost(client: VimClient, lease: MoRef, device: z.infer<typeof DeviceUrl>): void {
  if (/^https?:\/\/\*(?=[:/])/.test(device.url)) return;
  client.http.trustOrigin(new URL(device.url).origin, {
    thumbprint: device.sslThumbprint || undefined,
    label: `the ESXi host of NFC lease ${lease.value}`,
  });
}

/** The fault an abort hands to vCenter (it shows in the lease's error and the task list). */
function abortFault(err: unknown): Record<string, unknown> {
  const reason = describeCause(err).slice(0, 1000);
  return { fault: { $type: "SystemError", reason }, localizedMessage: reason };
}

// ---------------------------------------------------------------------------
// The import

/**
 * Imports a streamOptimized VMDK as the one disk of a shadow VM (ImportVApp and its
 * NFC lease). On success the VM is still registered: read `disk`, move it, then
 * `release()`. On failure the lease is aborted, the VM and its folder are removed,
 * and an NfcImportError says at which stage and why.
 */
export async function importStreamOptimized(client: VimClient, opts: StreamOptimizedImport): Promise<ImportedDisk> {
  const dsName = await datastoreName(client, opts.datastore);
  const spec = shadowImportSpec(opts.name, dsName, opts.capacityBytes, opts.adapterType, opts.resourcePool, opts.provisioning);
  let lease: MoRef;
  try {
    lease = moRef.parse(await client.invoke("ImportVApp", opts.resourcePool, { spec, folder: opts.folder ?? opts.datacenter.vmFolder }));
  } catch (err) {
    // ImportVApp makes nothing when it fails: a VM of that name is someone else's (DuplicateName),
    // unless the answer was lost, when it may be the one this call made.
    throw new NfcImportError(opts.name, "import", err, err instanceof OutcomeUnknownError ? await leftovers(client, opts, undefined, undefined) : []);
  }

  let stage: NfcImportError["stage"] = "lease";
  let vm: MoRef | undefined;
  let files: { disk: DatastorePath; vmFolder: DatastorePath } | undefined;
  try {
    const info = await whenReady(client, lease, opts.readyTimeoutMs ?? 600_000);
    vm = info.entity;
    if (!vm) throw new Error(`the lease ${lease.value} names no VM`);
    files = await readVmFiles(client, vm);
    const device = info.deviceUrl.find((d) => d.disk !== false) ?? info.deviceUrl[0];
    if (!device) throw new Error(`the lease ${lease.value} has no device URL for the disk`);

    stage = "upload";
    trustLeaseHost(client, lease, device);
    const progress = new ProgressReporter(client, lease, opts.progressIntervalMs ?? 5000);
    let transfer: StreamResult;
    try {
      transfer = await uploadToUrl(client, device.url, opts.stream, {
        kind: "disk",
        length: opts.length,
        ...(opts.checksums ? { checksums: opts.checksums } : {}),
        onProgress: (sent, total) => {
          progress.update(sent, total);
          opts.onProgress?.(sent, total);
        },
      });
    } finally {
      await progress.stop();
    }

    stage = "complete";
    await client.invoke("HttpNfcLeaseComplete", lease);
    const imported = { vm, ...files };
    let released = false;
    return {
      ...imported,
      transfer,
      release: async (r = {}) => {
        if (!released) await unregisterVm(client, imported.vm);
        released = true;
        if (r.deleteFolder) await deleteFile(client, opts.datacenter, imported.vmFolder);
      },
    };
  } catch (err) {
    await client.invoke("HttpNfcLeaseAbort", lease, { fault: abortFault(err) }).catch(() => {
      // Already ended (timed out, or in error): vCenter removed the VM, or cleanup below does.
    });
    throw new NfcImportError(opts.name, stage, err, await leftovers(client, opts, vm, files?.vmFolder));
  }
}

/**
 * After an abort: vCenter removes the VM and its files; whatever is still there is
 * destroyed here. Returns what could not be removed.
 */
async function leftovers(client: VimClient, opts: StreamOptimizedImport, vm: MoRef | undefined, vmFolder: DatastorePath | undefined): Promise<string[]> {
  const left: string[] = [];
  try {
    vm ??= await findShadow(client, opts);
    if (vm && (await vmExists(client, vm))) {
      vmFolder ??= (await readVmFiles(client, vm).catch(() => undefined))?.vmFolder;
      await runTask(client, "Destroy_Task", vm);
    }
  } catch (err) {
    if (!(err instanceof ManagedObjectNotFoundFault)) left.push(`VM ${vm?.value ?? opts.name}`);
  }
  // Only a folder known to be the shadow VM's: a guess by name could be someone else's.
  if (vmFolder) {
    try {
      await deleteFile(client, opts.datacenter, vmFolder);
    } catch {
      left.push(vmFolder.toString());
    }
  }
  return left;
}

/** The shadow VM by name in its folder, when the lease never said which it is. */
async function findShadow(client: VimClient, opts: StreamOptimizedImport): Promise<MoRef | undefined> {
  const found = await client.invoke("FindChild", client.serviceContent.searchIndex ?? opts.datacenter.vmFolder, {
    entity: opts.folder ?? opts.datacenter.vmFolder,
    name: opts.name,
  });
  return found === undefined || found === "" ? undefined : moRef.parse(found);
}
