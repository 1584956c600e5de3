/**
 * The vSphere driver core: vim25 SOAP, sessions, property collector, tasks and
 * inventory. It knows nothing of Pulumi, so it can be used as a plain library and
 * from a command line.
 *
 * @example
 * const client = await VimClient.connect({ host: "vc.example.com", username, password, caFile });
 * const dc = await getDatacenter(client);
 * const cluster = await getCluster(client, dc, "prod");
 * await client.close();
 */
export { VimClient, MINIMUM_VCENTER_VERSION, versionAtLeast } from "./client.js";
export type { CallOptions, CallOutcome, ClientOptions, ClientStats, LogEvent, ServiceContent, UserSession } from "./client.js";
export { METHODS, REPLAY_SAFE_METHODS, methodInfo } from "./methods.js";
export type { MethodInfo } from "./methods.js";
export { HttpChannel } from "./http.js";
export type { RequestBody, StreamBody, TransferRequest, TransferResponse } from "./http.js";
export * from "./errors.js";
export { PropertyCollector, UpdateWaiter, containerViewObjectSpec } from "./property.js";
export type { ObjectSpec, PropertyFilterSpec, PropertySpec, RawObjectContent, Retrieved, Selection } from "./property.js";
export { runTask, waitForTask } from "./task.js";
export type { TaskWaitOptions, TaskWaitStrategy } from "./task.js";
export { datacenterPath, findCluster, findVm, getCluster, getDatacenter, getDatastores, getHosts, getNetworks, listVms } from "./inventory.js";
export type { Cluster, Datacenter, Datastore, Host, Network, VmQuery, VmSummary } from "./inventory.js";
export { InventoryCache, inventoryCache, loadInventory } from "./inventory-cache.js";
export {
  DatastorePath,
  copyFile,
  copyVirtualDisk,
  deleteFile,
  deleteVirtualDisk,
  extendVirtualDisk,
  fileExists,
  findDatastore,
  flatExtentOf,
  listFolder,
  listFolderIfExists,
  makeDirectory,
  moveFile,
  moveVirtualDisk,
  statFile,
} from "./datastore.js";
export type { DatastoreHandle, FileEntry, ListOptions, PathLike } from "./datastore.js";
export { DATASTORE_TYPES, anchoredRegex, chooseDatastore, rejectionReasons, selectDatastore } from "./datastore-select.js";
export type { HostName, SelectOptions, Selection as DatastoreSelection } from "./datastore-select.js";
export { download, folderUrl, headFile, upload, uploadToUrl } from "./transfer.js";
export type { ChecksumAlgorithm, Download, StreamOptions, StreamResult, UploadOptions, UploadResult, UploadSource, UploadStream } from "./transfer.js";
export type { ClusterNode, DistributedPortGroupNode, InventorySnapshot, LoadOptions, SwitchNode } from "./inventory-cache.js";
export * as schema from "./schema.js";
export {
  addStandardPortGroup,
  createDistributedPortGroup,
  destroyDistributedPortGroup,
  findNetwork,
  getDistributedPortGroup,
  getDistributedSwitch,
  getHostNetworking,
  networkVms,
  reconfigureDistributedPortGroup,
  removeStandardPortGroup,
  setDistributedPortGroupVlan,
  standardNetworkOf,
  updateStandardPortGroup,
  vswitchForNic,
} from "./network.js";
export type { DistributedPortGroup, DistributedSwitch, HostNetworking, HostPortGroup, HostTarget, PortBinding, StandardPortGroupSpec } from "./network.js";
export { MoRef } from "./soap/xml.js";
export type { VimObject, VimValue, TypedPrimitive } from "./soap/xml.js";
export { buildEnvelope, parseEnvelope } from "./soap/envelope.js";
export { certificateBundleUrl, checkHost, normalizeThumbprint } from "./transport.js";
export type { TlsOptions } from "./transport.js";
// Image bytes: format detection, VMDK/OVA parsing, checksums (no vCenter involved).
export { ChecksumMismatchError, ImageFormatError, MissingExtentError, UnsupportedImageError } from "./image-errors.js";
export type { InvalidImageReason } from "./image-errors.js";
export { ADAPTER_TYPES, DISK_TYPES, adapterTypeSchema, contradictions, diskTypeSchema, parseDescriptor, parseSparseHeader, vmdkInfo } from "./vmdk.js";
export type { AdapterType, Contradiction, DescriptorAdapterType, DiskType, SparseExtentHeader, VmdkDescriptor, VmdkExtent, VmdkInfo } from "./vmdk.js";
export { PREFIX_BYTES, checkTotalSize, describeFormat, detectImage } from "./image-format.js";
export type { Detection, ImageFormat, ImageInfo } from "./image-format.js";
export { flatExtentsStream, resolveExtents, sniffImage, sniffImageFile } from "./image-stream.js";
export type { LocalExtent, SniffOptions, SniffedFile, SniffedImage } from "./image-stream.js";
export { openOva, parseManifest, parseOvf } from "./ova.js";
export type { OpenedOva, OvfController, OvfDescriptor, OvfDisk, OvfFile } from "./ova.js";
export { DigestStream, parseChecksum, verifyChecksum } from "./checksum.js";
export type { Checksum, DigestAlgorithm, Digests } from "./checksum.js";
export { ByteReader } from "./byte-reader.js";
export type { ByteSource } from "./byte-reader.js";
// Disks into datastores through an NFC lease (a shadow VM), and who uses a disk.
export { CONTROLLER_TYPES, NfcImportError, importStreamOptimized, shadowImportSpec } from "./nfc-import.js";
export type { DiskProvisioning, ImportedDisk, StreamOptimizedImport } from "./nfc-import.js";
export { allVmDisks, diskUsage, diskUsers } from "./disk-users.js";
export type { DiskUsage, DiskUser, VmDiskFiles } from "./disk-users.js";
// The datastore image cache: layout, atomic publish by disk type, copy between datastores.
export { STAGING_FOLDER, cacheLocation, cachePrefixSchema, cachedImages, copyToDatastore, ensureSizedBase, imageIdSchema, removeCachedImage, sizedBaseLocation, staleStaging, sweepStaging } from "./image-cache.js";
export type { CacheLocation, CachedImage, CachedKind, CopyOptions, CopyResult, SizedBaseOptions } from "./image-cache.js";
// The cache sweeper: Nova's age markers, what is in use read from vCenter, leftovers of failed work.
export { ageMarkerName, ageMarkerTime, clearAgeMarkers, listCache, sweepCache } from "./cache-sweep.js";
export type { DatastoreSweep, ImageSweep, SweepOptions, SweepReport } from "./cache-sweep.js";
export { publishImage, publishSourceOf } from "./image-publish.js";
export type { ImportStreamOptimized, PublishOptions, PublishResult, PublishSource } from "./image-publish.js";
// Guest OS identifiers (vim25 VirtualMachineGuestOsIdentifier, generated from govmomi) and typo suggestions.
export { GUEST_OS_IDS, GUEST_OS_MIN_API_VERSION, GUEST_OS_NAMES, closestGuestOsIds, isGuestOsId } from "./guest-os.js";
// Image sources: a local path or http(s) URL inspected, hashed and opened for publishImage (qemu-img conversions).
export { ConversionFailedError, ConversionToolMissingError, SourceChangedError, SourceFetchError, SourceNotFoundError } from "./image-errors.js";
export { digestSource, inspectSource, openSource } from "./image-source.js";
export type { InspectedSource, OpenOptions, OpenedSource, SourceDigestAlgorithm, SourceDigests, SourceFingerprint, SourceSpec } from "./image-source.js";
export { MAX_REDIRECTS, displayUrl } from "./image-source-http.js";
export { checkQemuImg, qemuAdapter } from "./image-convert.js";
export type { QemuFormat } from "./image-convert.js";
// VNC console ports (Instance).
export { NoFreeVncPortError, VNC_ENABLED_KEY, VNC_PORTS, VNC_PORT_KEY, pickVncPort, portsTakenOn, vncPortsInUse } from "./vnc.js";
export type { VncUse } from "./vnc.js";
// A VM's power state and its removal the Nova way (Instance).
export { removeVm, setPowerState, unregisterVm, vmExists, vmState } from "./vm-lifecycle.js";
export type { PowerState } from "./vm-lifecycle.js";
// The instance's VirtualMachineConfigSpec for one CreateVM_Task (controller, root disk, NICs, serial port, extraConfig), and finding its devices again.
export {
  CONSOLE_DELAY_KEY,
  DISK_CONTROLLER_TYPES,
  IDE_CONTROLLER_KEYS,
  METADATA_PREFIX,
  NIC_DEVICE_TYPES,
  NIC_MODELS,
  VNC_KEYS,
  VmSpecError,
  buildVmConfigSpec,
  extraConfigOf,
  matchDevices,
  plannedDevices,
} from "./vm-spec.js";
export type {
  AllocationOptions,
  DeviceRole,
  DistributedNicBacking,
  NicModel,
  NicOptions,
  PlannedDevice,
  RootDiskOptions,
  SharesLevel,
  StandardNicBacking,
  VmSpecOptions,
} from "./vm-spec.js";
// The host a new VM goes to where DRS does not choose (Instance).
export { chooseHost, hostFor, hostLoads } from "./host-select.js";
export type { HostLoad } from "./host-select.js";
// Holders of a cached image and what they say of it (Image, Instance from a bare imageId).
export { addHolder, holdersIn, holdersOf, readHolders, removeHolder } from "./image-holders.js";
export type { HolderRecord } from "./image-holders.js";
// Spawning an instance's VM (Instance).
export { spawnVm } from "./vmops.js";
export type { SpawnOptions, SpawnedVm } from "./vmops.js";
// An instance's root disk made ready: image cached on the datastore, sized base or full copy.
export { prepareRootDisk } from "./root-disk.js";
export type { PreparedRootDisk, RootDiskRequest } from "./root-disk.js";
