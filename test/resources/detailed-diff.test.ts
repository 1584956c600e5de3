// Building detailed diffs: the diff's own decision (changes, replaces) rules the kinds.
import { describe, expect, it } from "vitest";
import { changeKind, propertyPath, topKey, withDetail } from "../../provider/resources/detailed-diff.js";

describe("withDetail", () => {
  it("gives each entry its kind, the replace suffix exactly where replaces says", () => {
    const r = withDetail({ changes: true, replaces: ["image"], deleteBeforeReplace: false }, [
      { path: "image", kind: "UPDATE" },
      { path: "cpus", kind: "UPDATE_REPLACE" }, // not a replace key: an update
      { path: "networks[1].model", kind: "ADD" },
      { path: "vncPort", kind: "DELETE", inputDiff: false },
    ]);
    expect(r).toEqual({
      changes: true,
      replaces: ["image"],
      deleteBeforeReplace: false,
      detailedDiff: {
        image: { kind: "UPDATE_REPLACE", inputDiff: true },
        cpus: { kind: "UPDATE", inputDiff: true },
        "networks[1].model": { kind: "ADD", inputDiff: true },
        vncPort: { kind: "DELETE", inputDiff: false },
      },
    });
  });

  it("replaces on a nested path's top-level property, and gives a replace key with no entry its own", () => {
    const r = withDetail({ changes: true, replaces: ["networks", "datastore"] }, [{ path: "networks[0].portGroup", kind: "UPDATE" }, { path: "networks[0].portGroup", kind: "ADD" }]);
    expect(r.detailedDiff).toEqual({
      "networks[0].portGroup": { kind: "UPDATE_REPLACE", inputDiff: true },
      datastore: { kind: "UPDATE_REPLACE", inputDiff: true },
    });
  });

  it("carries no detail when the diff is no change, or an unknown one", () => {
    expect(withDetail({ changes: false, replaces: [] }, [{ path: "cpus", kind: "UPDATE" }])).toEqual({ changes: false, replaces: [] });
    expect(withDetail({ replaces: [] }, [{ path: "cpus", kind: "UPDATE" }])).toEqual({ replaces: [] });
    expect(withDetail({ changes: true, replaces: [] }, [])).toEqual({ changes: true, replaces: [] });
  });
});

describe("paths and kinds", () => {
  it("writes property paths as the engine reads them", () => {
    expect(propertyPath("networks", 1, "model")).toBe("networks[1].model");
    expect(propertyPath("hostVlans", "DC0_C0_H1")).toBe("hostVlans.DC0_C0_H1");
    expect(propertyPath("hostVlans", "esx-1.lab.local")).toBe('hostVlans["esx-1.lab.local"]');
    expect(topKey('hostVlans["esx-1.lab.local"]')).toBe("hostVlans");
    expect(topKey("networks[1].model")).toBe("networks");
    expect(topKey("cpus")).toBe("cpus");
  });

  it("tells an added, a removed and a changed value apart", () => {
    expect(changeKind(undefined, 2)).toBe("ADD");
    expect(changeKind(2, undefined)).toBe("DELETE");
    expect(changeKind(2, 4)).toBe("UPDATE");
    expect(changeKind(undefined, undefined)).toBe("UPDATE");
  });
});
