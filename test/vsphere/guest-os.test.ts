// The guest id list the Image resource's osType accepts: the seed's vmware_ostype table,
// vSphere 8/9 ids, and the suggestions a misspelt id gets.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GUEST_OS_IDS, GUEST_OS_MIN_API_VERSION, GUEST_OS_NAMES, closestGuestOsIds, isGuestOsId } from "../../provider/vsphere/guest-os.js";

/** The ids of the seed's "OpenStack Image service OS type settings" list-table. */
function seedOsTypes(): string[] {
  const rst = readFileSync("/work/shared/seed/hypervisor-vmware.rst", "utf8");
  const table = rst.slice(rst.indexOf(".. list-table:: OpenStack Image service OS type settings"));
  const ids = [...table.matchAll(/^ {3}\* - (\S+Guest\S*)$/gm)].map((m) => m[1]!);
  return [...new Set(ids)];
}

describe("GUEST_OS_IDS", () => {
  it("holds every vmware_ostype of the seed's table", () => {
    const seed = seedOsTypes();
    expect(seed.length).toBeGreaterThan(80);
    expect(seed.filter((id) => !isGuestOsId(id))).toEqual([]);
  });

  it("has no duplicates, and every id has a retail name", () => {
    expect(new Set(GUEST_OS_IDS).size).toBe(GUEST_OS_IDS.length);
    expect(GUEST_OS_IDS.filter((id) => !GUEST_OS_NAMES[id])).toEqual([]);
  });

  it("is newer than Debian's govmomi 0.24.2 (vSphere 7.0, 181 ids): vSphere 8 and 9 guests are there", () => {
    expect(GUEST_OS_IDS.length).toBeGreaterThan(181);
    for (const id of ["rhel9_64Guest", "windows11_64Guest", "windows2022srvNext_64Guest", "debian12_64Guest", "rockylinux_64Guest", "almalinux_64Guest"]) {
      expect(isGuestOsId(id), id).toBe(true);
    }
    expect(GUEST_OS_MIN_API_VERSION["windows11_64Guest"]).toBe("8.0.0.1");
    expect(Object.keys(GUEST_OS_MIN_API_VERSION).filter((id) => !isGuestOsId(id))).toEqual([]);
  });

  it("keeps the enum's declaration order (dosGuest first, otherGuest64 last)", () => {
    expect(GUEST_OS_IDS[0]).toBe("dosGuest");
    expect(GUEST_OS_IDS.at(-1)).toBe("otherGuest64");
  });
});

describe("isGuestOsId", () => {
  it("compares exactly, as vCenter does", () => {
    expect(isGuestOsId("ubuntu64Guest")).toBe(true);
    expect(isGuestOsId("ubuntu64guest")).toBe(false);
    expect(isGuestOsId("")).toBe(false);
    expect(isGuestOsId("ubuntu64Guest ")).toBe(false);
  });
});

describe("closestGuestOsIds", () => {
  it("ranks a case-only difference first", () => {
    expect(closestGuestOsIds("ubuntu64guest")[0]).toBe("ubuntu64Guest");
    expect(closestGuestOsIds("UBUNTU64GUEST")[0]).toBe("ubuntu64Guest");
  });

  it("finds the id a typo meant", () => {
    expect(closestGuestOsIds("ubunt64Guest")[0]).toBe("ubuntu64Guest");
    expect(closestGuestOsIds("rhel9_64guest")[0]).toBe("rhel9_64Guest");
    expect(closestGuestOsIds("debian12")[0]).toBe("debian12Guest");
  });

  it("gives 3 by default, n when asked, best first", () => {
    expect(closestGuestOsIds("ubunt64Guest")).toEqual(["ubuntu64Guest", "ubuntuGuest", "suse64Guest"]);
    expect(closestGuestOsIds("ubunt64Guest", 1)).toEqual(["ubuntu64Guest"]);
    expect(closestGuestOsIds("ubunt64Guest", 0)).toEqual([]);
    expect(closestGuestOsIds("x", 1000)).toHaveLength(GUEST_OS_IDS.length);
  });

  it("breaks ties by length, then alphabetically", () => {
    // windows7/8/9Guest are each 2 edits from windows10Guest (and of one length), so alphabetical;
    // windows7_64Guest is as far but longer.
    expect(closestGuestOsIds("windows10Guest", 4)).toEqual(["windows7Guest", "windows8Guest", "windows9Guest", "windows7_64Guest"]);
  });

  it("windows9Guest (vSphere's Windows 10) is itself first, then its neighbours", () => {
    expect(isGuestOsId("windows9Guest")).toBe(true);
    expect(GUEST_OS_NAMES["windows9Guest"]).toBe("Windows 10");
    expect(closestGuestOsIds("windows9Guest")).toEqual(["windows9Guest", "windows7Guest", "windows8Guest"]);
    expect(closestGuestOsIds("windows9-64Guest")[0]).toBe("windows9_64Guest");
  });
});
