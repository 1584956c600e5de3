// The Image input rules that need no vCenter: fingerprints compared as the engine hands
// them back (a protobuf Struct sorts object keys), URL content ids, osType suggestions.
import { describe, expect, it } from "vitest";
import { canonical, osTypeFailure, sameFingerprint, urlContentId } from "../../provider/resources/image-inputs.js";

describe("Image inputs", () => {
  it("sees the same fingerprint whatever the order of its keys (the state's come back sorted)", () => {
    const fresh = { kind: "file" as const, files: [{ path: "/a.vmdk", size: 10, mtimeMs: 1.5 }] };
    const stored = JSON.parse('{"files":[{"mtimeMs":1.5,"path":"/a.vmdk","size":10}],"kind":"file"}');
    expect(sameFingerprint(stored, fresh)).toBe(true);
    expect(sameFingerprint(stored, { ...fresh, files: [{ path: "/a.vmdk", size: 10, mtimeMs: 2 }] })).toBe(false);
    expect(sameFingerprint(undefined, fresh)).toBe(false);
    expect(canonical({ b: 1, a: [{ d: 2, c: undefined }] })).toBe('{"a":[{"d":2}],"b":1}');
  });

  it("identifies a URL's version by checksum, else ETag or Last-Modified with the URL and size, else not at all", () => {
    const fp = { kind: "url" as const, url: "http://h/x.vmdk", size: 5, etag: '"e1"' };
    expect(urlContentId(fp, "SHA256:AB")).toBe("sha256:ab");
    expect(urlContentId(fp, undefined)).toBe('url:http://h/x.vmdk|etag:"e1"|size:5');
    expect(urlContentId({ kind: "url", url: "http://h/x.vmdk", lastModified: "Tue" }, undefined)).toBe("url:http://h/x.vmdk|modified:Tue|size:?");
    expect(urlContentId({ kind: "url", url: "http://h/x.vmdk", size: 5 }, undefined)).toBeUndefined();
  });

  it("refuses an unknown osType with the closest guest ids", () => {
    expect(osTypeFailure("ubuntu64Guest")).toBeUndefined();
    expect(osTypeFailure("Ubuntu64guest")?.reason).toMatch(/did you mean "ubuntu64Guest"/);
    // Each suggestion with its retail name: "windows9Guest" is vSphere's id for Windows 10.
    expect(osTypeFailure("windows10Guest")?.reason).toMatch(/"windows9Guest" \(Windows 10\)/);
  });
});
