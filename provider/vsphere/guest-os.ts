// Guest OS identifiers: is a name one vCenter knows, and which ones did a misspelt name
// mean. The list itself is generated (guest-os-ids.ts, scripts/gen-guest-os.mjs).
import { levenshtein } from "./edit-distance.js";
import { GUEST_OS_IDS } from "./guest-os-ids.js";

export { GUEST_OS_IDS, GUEST_OS_MIN_API_VERSION, GUEST_OS_NAMES } from "./guest-os-ids.js";

const KNOWN = new Set(GUEST_OS_IDS);

/** vCenter compares guest ids exactly, so "ubuntu64guest" is not one. */
export function isGuestOsId(id: string): boolean {
  return KNOWN.has(id);
}

/**
 * The n closest ids by case-insensitive edit distance, best first (ties: shorter first,
 * then alphabetical); a case-only difference ranks first, since its distance is 0.
 */
export function closestGuestOsIds(id: string, n = 3): string[] {
  const wanted = id.toLowerCase();
  return GUEST_OS_IDS.map((candidate) => ({ candidate, d: levenshtein(wanted, candidate.toLowerCase()) }))
    .sort((a, b) => a.d - b.d || a.candidate.length - b.candidate.length || (a.candidate < b.candidate ? -1 : a.candidate > b.candidate ? 1 : 0))
    .slice(0, Math.max(0, n))
    .map((x) => x.candidate);
}
