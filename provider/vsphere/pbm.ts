// Storage policies (SPBM, vCenter's storage policy service) for placing a VM's disks,
// as Nova does with `pbm_enabled`: a policy found by name, the datastores that satisfy
// it, and the profile spec that puts it on a VM and its disks. SPBM is its own SOAP
// service at /pbm (namespace urn:pbm) on the vim session (client.ts, invokeAt).
import { z } from "zod";
import { versionAtLeast, type SoapService, type VimClient } from "./client.js";
import { levenshtein } from "./edit-distance.js";
import { VSphereError } from "./errors.js";
import { arrayOf, dataObject, moRef, str } from "./schema.js";
import { MoRef } from "./soap/xml.js";

export { vmProfileSpec, type VmProfileSpec } from "./vm-spec.js";

/**
 * The SPBM endpoint. Its API version follows vCenter's: SPBM 1.0 came with vCenter 5.5,
 * 2.0 with 6.0; every method used here is in 1.0.
 */
export function pbmService(client: VimClient): SoapService {
  const v = client.serviceContent.about.apiVersion;
  return { path: "/pbm", namespace: "urn:pbm", version: versionAtLeast(v, "6.0") ? "2.0" : "1.0" };
}

const SERVICE_INSTANCE = new MoRef("PbmServiceInstance", "ServiceInstance");

const PbmContentSchema = dataObject({ profileManager: moRef, placementSolver: moRef });
type PbmContent = z.infer<typeof PbmContentSchema>;
const ProfileIdsSchema = arrayOf(dataObject({ uniqueId: str }));
const ProfilesSchema = arrayOf(dataObject({ profileId: dataObject({ uniqueId: str }), name: str }));
const HubsSchema = arrayOf(dataObject({ hubType: str, hubId: str }));

/** SPBM's service content, read once per client (it names fixed managers). */
const contents = new WeakMap<VimClient, Promise<PbmContent>>();

function pbmContent(client: VimClient): Promise<PbmContent> {
  let p = contents.get(client);
  if (!p) {
    p = client.invokeAt(pbmService(client), "PbmRetrieveServiceContent", SERVICE_INSTANCE).then((v) => PbmContentSchema.parse(v));
    // A failure is not kept: the next caller asks again.
    p.catch(() => contents.get(client) === p && contents.delete(client));
    contents.set(client, p);
  }
  return p;
}

export interface StoragePolicy {
  /** The profile's uniqueId, what a VM's profile spec names. */
  id: string;
  name: string;
}

/** No storage policy has that name; `existing` lists those that do, closest name first. */
export class StoragePolicyNotFoundError extends VSphereError {
  readonly code = "StoragePolicyNotFound";
  constructor(
    readonly policy: string,
    readonly existing: readonly string[],
  ) {
    super(
      `storage policy "${policy}" not found in vCenter (SPBM, storage requirement policies); ` +
        (existing.length ? `the policies that exist, closest first: ${existing.map((n) => `"${n}"`).join(", ")}` : "vCenter has none"),
    );
  }
}

/** Names by case-insensitive edit distance to `wanted`, ties alphabetical. */
function closestFirst(wanted: string, names: readonly string[]): string[] {
  const w = wanted.toLowerCase();
  return [...new Set(names)]
    .map((name) => ({ name, d: levenshtein(w, name.toLowerCase()) }))
    .sort((a, b) => a.d - b.d || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((x) => x.name);
}

/**
 * The storage requirement policy named `name` (exactly, as vCenter compares them):
 * PbmQueryProfile for the ids, PbmRetrieveContent for their names, so two round trips
 * (three on a client's first SPBM call).
 */
export async function findPolicy(client: VimClient, name: string): Promise<StoragePolicy> {
  const sc = await pbmContent(client);
  const service = pbmService(client);
  const ids = ProfileIdsSchema.parse(
    await client.invokeAt(service, "PbmQueryProfile", sc.profileManager, {
      resourceType: { resourceType: "STORAGE" },
      profileCategory: "REQUIREMENT",
    }),
  );
  // PbmRetrieveContent refuses an empty list.
  const profiles = ids.length === 0 ? [] : ProfilesSchema.parse(await client.invokeAt(service, "PbmRetrieveContent", sc.profileManager, { profileIds: ids }));
  const hit = profiles.find((p) => p.name === name);
  if (!hit) throw new StoragePolicyNotFoundError(name, closestFirst(name, profiles.map((p) => p.name)));
  return { id: hit.profileId.uniqueId, name: hit.name };
}

/**
 * Which of `datastores` satisfy the policy, in the order given: PbmQueryMatchingHub
 * over them as hubs (one round trip; none for an empty list, which SPBM would read as
 * "search every datastore"). Nova filters its candidates the same way.
 */
export async function compatibleDatastores(client: VimClient, policyId: string, datastores: readonly MoRef[]): Promise<MoRef[]> {
  if (datastores.length === 0) return [];
  const sc = await pbmContent(client);
  const hubs = HubsSchema.parse(
    await client.invokeAt(pbmService(client), "PbmQueryMatchingHub", sc.placementSolver, {
      hubsToSearch: datastores.map((ds) => ({ hubType: "Datastore", hubId: ds.value })),
      profile: { uniqueId: policyId },
    }),
  );
  const matching = new Set(hubs.filter((h) => h.hubType === "Datastore").map((h) => h.hubId));
  return datastores.filter((ds) => matching.has(ds.value));
}

