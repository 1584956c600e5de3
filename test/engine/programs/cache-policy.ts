// A test program: Images, Instances and ImageCachePolicies described by stack config
// `cachetest:spec` (JSON), so each run of a test can change them. An instance's
// `image` names an Image of the spec.
import * as pulumi from "@pulumi/pulumi";
import { Image, ImageCachePolicy, Instance, type ImageArgs, type ImageCachePolicyArgs, type InstanceArgs } from "pulumi-vmware-vcenter";

interface Spec {
  images?: Record<string, ImageArgs>;
  instances?: Record<string, Omit<InstanceArgs, "image"> & { image: string }>;
  policies?: Record<string, ImageCachePolicyArgs & { dependsOnInstances?: boolean }>;
}

const spec = JSON.parse(new pulumi.Config("cachetest").get("spec") ?? "{}") as Spec;
const images = Object.fromEntries(Object.entries(spec.images ?? {}).map(([name, args]) => [name, new Image(name, args)]));
const instances = Object.entries(spec.instances ?? {}).map(([name, { image, ...rest }]) => new Instance(name, { ...rest, image: images[image]! }));

export const policies = Object.fromEntries(
  Object.entries(spec.policies ?? {}).map(([name, { dependsOnInstances, ...args }]) => {
    // After the instances when asked: the sweep then sees their disks in use.
    const p = new ImageCachePolicy(name, args, dependsOnInstances ? { dependsOn: instances } : undefined);
    return [name, pulumi.all([p.lastSweep, p.summary, p.sweepDue]).apply(([lastSweep, summary, sweepDue]) => ({ lastSweep, summary, sweepDue }))];
  }),
);
export const imageIds = Object.fromEntries(Object.entries(images).map(([name, img]) => [name, img.imageId]));
