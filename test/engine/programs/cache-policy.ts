// A test program: Images, Instances and ImageCachePolicies described by stack config
// `cachetest:spec` (JSON), so each run of a test can change them. An instance's
// `image` names an Image of the spec; a policy's `datastoresOfImage` sweeps the
// datastores that Image is cached on (unknown until it is made: a preview's unknown input).
import * as pulumi from "@pulumi/pulumi";
import { Image, ImageCachePolicy, Instance, type ImageArgs, type ImageCachePolicyArgs, type InstanceArgs } from "pulumi-vmware-vcenter";

interface Spec {
  images?: Record<string, ImageArgs>;
  instances?: Record<string, Omit<InstanceArgs, "image"> & { image: string }>;
  policies?: Record<string, ImageCachePolicyArgs & { dependsOnInstances?: boolean; datastoresOfImage?: string }>;
}

const spec = JSON.parse(new pulumi.Config("cachetest").get("spec") ?? "{}") as Spec;
const images = Object.fromEntries(Object.entries(spec.images ?? {}).map(([name, args]) => [name, new Image(name, args)]));
const instances = Object.entries(spec.instances ?? {}).map(([name, { image, ...rest }]) => new Instance(name, { ...rest, image: images[image]! }));

export const policies = Object.fromEntries(
  Object.entries(spec.policies ?? {}).map(([name, { dependsOnInstances, datastoresOfImage, ...args }]) => {
    const from = datastoresOfImage !== undefined ? { datastores: images[datastoresOfImage]!.cached.apply((c) => Object.keys(c)) } : {};
    // After the instances when asked: the sweep then sees their disks in use.
    const p = new ImageCachePolicy(name, { ...args, ...from }, dependsOnInstances ? { dependsOn: instances } : undefined);
    return [name, pulumi.all([p.lastSweep, p.summary, p.sweepDue]).apply(([lastSweep, summary, sweepDue]) => ({ lastSweep, summary, sweepDue }))];
  }),
);
export const imageIds = Object.fromEntries(Object.entries(images).map(([name, img]) => [name, img.imageId]));
