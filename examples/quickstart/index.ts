// Quickstart: what a user copies. It grows with every resource of
// pulumi-vmware-vcenter. Run it with `npm run demo` (the embedded simulator) or
// `pulumi up` against your own vCenter (README: stack configuration).
import * as pulumi from "@pulumi/pulumi";
import { Image, PortGroup } from "pulumi-vmware-vcenter";

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
