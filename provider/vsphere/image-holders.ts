// Who holds a cached image. Two stacks (or two Image resources) whose image has the
// same content share one cached copy (the default imageId comes from the content, and
// stacks may share a cachePrefix). Deleting one of them must not take the copy from
// under the other, so each holder leaves a marker file in the image's cache folder,
// `holder-<id>.json`, and a delete removes the copy only when no other marker is left
// (and no VM uses it: disk-users.ts). Nova keeps no such record: its cache manager
// ages images out by what its own instances use.
//
// The markers live beside the image, not in a state file: every process sees them, a
// crash leaves at most one stale marker (the image is then kept, never lost), and they
// go with the folder when the image is purged.
import type { VimClient } from "./client.js";
import { deleteFile, listFolderIfExists, type DatastorePath } from "./datastore.js";
import { FileNotFoundFault } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { download, upload } from "./transfer.js";

const MARKER = /^holder-([A-Za-z0-9_-]{1,64})\.json$/;

/** A holder id: letters, digits, '_' and '-' (a uuid). */
export function markerName(holder: string): string {
  const name = `holder-${holder}.json`;
  if (!MARKER.test(name)) throw new TypeError(`a holder id is 1-64 letters, digits, '_' or '-', got ${JSON.stringify(holder)}`);
  return name;
}

/** Records `holder` on the cached image in `folder` (one PUT of a small file). */
export async function addHolder(client: VimClient, datacenter: Datacenter, folder: DatastorePath, holder: string, note: Record<string, unknown> = {}): Promise<void> {
  const body = Buffer.from(`${JSON.stringify({ holder, since: new Date().toISOString(), ...note })}\n`);
  await upload(client, datacenter, folder.join(markerName(holder)), () => [body], { length: body.length, checksums: [] });
}

/** The holders among a folder's file names (a listing read for other reasons too). */
export function holdersIn(names: string[]): string[] {
  return names.flatMap((n) => {
    const m = MARKER.exec(n);
    return m ? [m[1]!] : [];
  });
}

/** The holders recorded in `folder` ([] when the folder is gone). */
export async function holdersOf(client: VimClient, datacenter: Datacenter, folder: DatastorePath): Promise<string[]> {
  const entries = (await listFolderIfExists(client, datacenter, folder, { matchPattern: ["holder-*.json"] })) ?? [];
  return holdersIn(entries.filter((e) => !e.folder).map((e) => e.name));
}

/** Removes `holder`'s marker; false when it was not there. */
export async function removeHolder(client: VimClient, datacenter: Datacenter, folder: DatastorePath, holder: string): Promise<boolean> {
  return deleteFile(client, datacenter, folder.join(markerName(holder)));
}

/** A holder's marker as written: who, since when, and what it says of the image. */
export interface HolderRecord {
  holder: string;
  since: string | undefined;
  /** The image's properties as that holder recorded them (kind, format, adapterType, osType, ...). */
  note: Record<string, unknown>;
}

const MAX_MARKER_BYTES = 64 * 1024;

/**
 * Every holder's marker in `folder`, newest first ([] when the folder is gone): how an
 * Instance of another stack learns an image's properties from its id alone. Markers are
 * read over /folder (one GET each, no SOAP call); an unreadable one is skipped.
 */
export async function readHolders(client: VimClient, datacenter: Datacenter, folder: DatastorePath): Promise<HolderRecord[]> {
  const out: HolderRecord[] = [];
  for (const holder of await holdersOf(client, datacenter, folder)) {
    try {
      const d = await download(client, datacenter, folder.join(markerName(holder)));
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of d.stream) {
        n += (c as Buffer).length;
        if (n > MAX_MARKER_BYTES) break;
        chunks.push(c as Buffer);
      }
      if (n > MAX_MARKER_BYTES) {
        d.stream.destroy();
        continue; // not one we wrote
      }
      const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) continue;
      const { holder: _h, since, ...note } = parsed as Record<string, unknown>;
      out.push({ holder, since: typeof since === "string" ? since : undefined, note });
    } catch (err) {
      // Removed since it was listed, or not JSON: the other markers still speak.
      if (!(err instanceof FileNotFoundFault) && !(err instanceof SyntaxError)) throw err;
    }
  }
  return out.sort((a, b) => (b.since ?? "").localeCompare(a.since ?? ""));
}
