// A test program: Images, PortGroups and Instances described by stack config
// `insttest:spec` (JSON), so each run of a test can change them. An instance's `image`
// names an Image of the spec; a network's `portGroup` names a PortGroup of the spec
// (else it is taken as a port group's name).
import * as pulumi from "@pulumi/pulumi";
import { Image, Instance, PortGroup, type ImageArgs, type InstanceArgs, type PortGroupArgs } from "pulumi-vmware-vcenter";

interface Spec {
  images?: Record<string, ImageArgs>;
  portGroups?: Record<string, PortGroupArgs>;
  instances?: Record<string, Omit<InstanceArgs, "image" | "networks"> & { image?: string; networks?: Array<{ portGroup?: string; switchUuid?: string; portgroupKey?: string; model?: "vmxnet3" | "e1000" | "e1000e"; macAddress?: string }> }>;
}

const spec = JSON.parse(new pulumi.Config("insttest").get("spec") ?? "{}") as Spec;
const images = Object.fromEntries(Object.entries(spec.images ?? {}).map(([name, args]) => [name, new Image(name, args)]));
const portGroups = Object.fromEntries(Object.entries(spec.portGroups ?? {}).map(([name, args]) => [name, new PortGroup(name, args)]));

export const instances = Object.fromEntries(
  Object.entries(spec.instances ?? {}).map(([name, { image, networks, ...rest }]) => {
    const vm = new Instance(name, {
      ...rest,
      ...(image !== undefined ? { image: images[image]! } : {}),
      ...(networks !== undefined
        ? { networks: networks.map((n) => ({ ...n, ...(n.portGroup !== undefined ? { portGroup: portGroups[n.portGroup] ?? n.portGroup } : {}) })) }
        : {}),
    });
    return [name, pulumi.all([vm.instanceUuid, vm.vmId, vm.host, vm.vncPort, vm.rootDisk]).apply(([instanceUuid, vmId, host, vncPort, rootDisk]) => ({ instanceUuid, vmId, host, vncPort, parent: rootDisk?.parents[0] }))];
  }),
);
