// Guest OS identifiers: is a name one vCenter knows, and which ones did a misspelt name
// mean. The list itself is generated (guest-os-ids.ts, scripts/gen-guest-os.mjs).
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

// A copy of the resource layer's distance: provider/vsphere must not import from it.
function levenshtein(s: string, t: string): number {
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const row = [i];
    for (let j = 1; j <= t.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (s[i - 1] === t[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[t.length]!;
}
