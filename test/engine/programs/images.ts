// A test program: Image resources described by stack config `imgtest:images`, a JSON
// object of resource name -> ImageArgs, so each run of a test can change them.
import * as pulumi from "@pulumi/pulumi";
import { Image, type ImageArgs } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("imgtest");
const specs = JSON.parse(cfg.get("images") ?? "{}") as Record<string, ImageArgs>;

export const images = Object.fromEntries(
  Object.entries(specs).map(([name, args]) => {
    const img = new Image(name, args);
    return [name, pulumi.all([img.imageId, img.path, img.format]).apply(([imageId, path, format]) => ({ imageId, path, format }))];
  }),
);
