// Quickstart: what a user copies. It grows with every resource of
// pulumi-vmware-vcenter. Run it with `npm run demo` (the embedded simulator) or
// `pulumi up` against your own vCenter (README: stack configuration).
import * as pulumi from "@pulumi/pulumi";
import { Image, ImageCachePolicy, Instance, PortGroup } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("quickstart");

// The flat network instances attach to: a port group on every host of the
// cluster (vmware:clusterName), on the vSwitch that uses vmware:vlanInterface.
const network = new PortGroup("instances", {
  name: cfg.get("networkName") ?? "quickstart-net",
  vlanId: cfg.getNumber("vlanId") ?? 100,
});

// The image instances boot from, streamed once into the datastore image cache
// (`[ds] <vmware:cachePrefix>_base/<imageId>/<imageId>.vmdk`). The source is a local
// path or an http(s) URL: a VMDK, an OVA, an ISO, or a qcow2 / VHD / raw disk that
// qemu-img converts. Its format, disk type and adapter type are read from the bytes.
const image = new Image("boot", {
  source: cfg.require("imageSource"),
  osType: cfg.get("osType") ?? "otherLinux64Guest",
});

// Three instances booting from it, each a linked clone of the cached image (a delta
// disk in the VM's own folder whose parent is the cached base), with a VNC console on
// a port of 5900-6105 that no other VM of the cluster's hosts uses.
const web = new Instance("web", {
  image,
  cpus: 1,
  memoryMb: 1024,
  networks: [{ portGroup: network }],
  metadata: { role: "web" },
});

// A larger root disk than the image: its parent is a sized base in the cache,
// `<imageId>.<rootDiskGb>.vmdk`, made once per size and shared by every instance of it.
// CPU and memory hot add let a later resize happen without a power cycle.
const db = new Instance("db", {
  image,
  cpus: 2,
  memoryMb: 2048,
  rootDiskGb: cfg.getNumber("dbRootDiskGb") ?? 20,
  cpuHotAdd: true,
  memoryHotAdd: true,
  networks: [{ portGroup: network }],
  metadata: { role: "db" },
});

// Made but left powered off (powerState "on" | "off" | "suspended", changed in place).
const batch = new Instance("batch", {
  image,
  displayName: "batch worker",
  cpus: 1,
  memoryMb: 512,
  powerState: "off",
  networks: [{ portGroup: network, model: "e1000e" }],
});

// The image cache's housekeeping, as Nova's image cache manager: each sweep marks
// cached images no VM uses, removes those unused for longer than the minimum age
// (vmware:removeUnusedOriginalMinimumAgeSeconds, a day by default) and the staging
// folders failed uploads left. A `pulumi up` more than sweepIntervalSeconds after the
// last sweep sweeps again. It never removes an image a VM uses, nor one an Image holds.
// After the instances, so its first report shows the image in use by them.
const cachePolicy = new ImageCachePolicy(
  "image-cache",
  { sweepIntervalSeconds: cfg.getNumber("cacheSweepIntervalSeconds") ?? 3600 },
  { dependsOn: [web, db, batch] },
);

export const networkName = network.name;
export const vlanId = network.vlanId;
export const hosts = network.hosts;
export const vswitches = network.hostSwitches;
export const networkId = network.networkId;

export const imageId = image.imageId;
export const imagePath = image.path;
export const imageFormat = image.formatDescription;
export const imageDatastores = image.cached.apply((c) => Object.keys(c));
export const imageSha256 = image.sha256;

// Per instance: the VM's name in vCenter (its instance uuid, the resource id), its
// managed object id, the host it runs on, its root disk's parent (the cached base it is
// a linked clone of) and its VNC console's port (on that host).
function summary(vm: Instance) {
  return pulumi.all([vm.name, vm.vmId, vm.displayName, vm.powerState, vm.host, vm.rootDisk, vm.vncPort]).apply(
    ([name, vmId, displayName, powerState, host, rootDisk, vncPort]) => ({
      name,
      vmId,
      displayName,
      powerState,
      host,
      diskParent: rootDisk?.parents[0],
      vncPort,
    }),
  );
}
export const instances = { web: summary(web), db: summary(db), batch: summary(batch) };

// The last sweep: when, what it counted, and per cached image the VMs that use it.
export const imageCache = pulumi.all([cachePolicy.lastSweep, cachePolicy.summary, cachePolicy.report]).apply(([lastSweep, summary, report]) => ({
  lastSweep,
  summary,
  inUse: Object.fromEntries(report.flatMap((d) => d.inUse.map((i) => [`[${d.datastore}] ${i.imageId}`, i.users]))),
}));
