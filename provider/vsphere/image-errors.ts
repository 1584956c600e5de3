// Errors about an image's bytes: what the source is, what was expected there and what
// was found, so `check` can put the message in front of the user as it is.
import { VSphereError } from "./errors.js";

/** Why an image was refused (a finer grain than `code`, for tests and callers). */
export type InvalidImageReason = "empty" | "truncated" | "badMagic" | "corrupt" | "tooLarge" | "notSectorAligned";

/** The bytes are not a valid image: empty, cut short, a wrong magic, or inconsistent headers. */
export class ImageFormatError extends VSphereError {
  readonly code = "InvalidImage";
  constructor(
    /** The file path or URL the bytes came from. */
    readonly source: string,
    readonly reason: InvalidImageReason,
    readonly expected: string,
    readonly found: string,
    hint?: string,
  ) {
    super(`${source}: ${describeReason(reason)}: expected ${expected}, found ${found}${hint ? `. ${hint}` : ""}`);
  }
}

function describeReason(reason: InvalidImageReason): string {
  switch (reason) {
    case "empty":
      return "the image is empty";
    case "truncated":
      return "the image is truncated";
    case "badMagic":
      return "not the image format expected";
    case "corrupt":
      return "the image is corrupt";
    case "tooLarge":
      return "a header or descriptor is larger than any valid one";
    case "notSectorAligned":
      return "not a known image format";
  }
}

/** A valid image of a kind the driver does not take (a delta disk, a gzip file, a bare .ovf). */
export class UnsupportedImageError extends VSphereError {
  readonly code = "UnsupportedImage";
  constructor(
    readonly source: string,
    /** What the bytes are, e.g. "VMDK twoGbMaxExtentSparse", "gzip-compressed data". */
    readonly found: string,
    /** How to make an image the driver takes. */
    readonly hint: string,
  ) {
    super(`${source}: ${found} is not supported. ${hint}`);
  }
}

/** A VMDK descriptor names extent files that are not there. */
export class MissingExtentError extends VSphereError {
  readonly code = "MissingExtent";
  constructor(
    readonly source: string,
    /** The extent file names as the descriptor writes them. */
    readonly missing: string[],
    /** Where they were looked for. */
    readonly lookedIn: string,
  ) {
    super(
      `${source}: the VMDK descriptor names extent file${missing.length === 1 ? "" : "s"} ${missing.map((m) => JSON.stringify(m)).join(", ")} ` +
        `that ${missing.length === 1 ? "is" : "are"} not in ${lookedIn}. A descriptor is only the disk's header: put its ` +
        `extent file(s) beside it, or give the -flat file as the image.`,
    );
  }
}

/** The bytes streamed do not have the checksum the caller declared. */
export class ChecksumMismatchError extends VSphereError {
  readonly code = "ChecksumMismatch";
  constructor(
    readonly source: string,
    readonly algorithm: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${source}: ${algorithm} checksum mismatch: expected ${expected}, the bytes read have ${actual}`);
  }
}

/** A source path or URL that is not there (no such file; HTTP 404 or 410). */
export class SourceNotFoundError extends VSphereError {
  readonly code = "SourceNotFound";
  constructor(
    readonly source: string,
    /** What was looked for and where, e.g. "no such file: /abs/path (…)". */
    readonly detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

/** A URL source could not be fetched: an HTTP error status, a refused or dropped connection. */
export class SourceFetchError extends VSphereError {
  readonly code = "SourceFetchFailed";
  constructor(
    readonly source: string,
    readonly detail: string,
    /** The HTTP status, when the server answered. */
    readonly status?: number,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(`${source}: ${detail}${hint ? `. ${hint}` : ""}`, options);
  }
}

/** The source is not what was inspected (at preview or earlier in this run): its content may differ. */
export class SourceChangedError extends VSphereError {
  readonly code = "SourceChanged";
  constructor(
    readonly source: string,
    /** Each difference, e.g. "size 1024 → 2048". */
    readonly changes: string[],
  ) {
    super(`${source} changed since it was inspected (${changes.join("; ")}). Run again so the new content is inspected and checked.`);
  }
}

/** An image that needs converting to a VMDK, and no converter (qemu-img) installed. */
export class ConversionToolMissingError extends VSphereError {
  readonly code = "ConversionToolMissing";
  constructor(
    readonly source: string,
    /** What the image is, e.g. "qcow2". */
    readonly format: string,
    /** The command looked for. */
    readonly tool: string,
  ) {
    super(
      `${source}: a ${format} image is converted to a VMDK with qemu-img, and ${JSON.stringify(tool)} was not found. ` +
        "Install it (Debian/Ubuntu: `apt-get install qemu-utils`; Fedora/RHEL: `dnf install qemu-img`; macOS: `brew install qemu`), " +
        "or convert the image yourself: `qemu-img convert -O vmdk -o subformat=streamOptimized <image> out.vmdk`, and give out.vmdk.",
    );
  }
}

/** qemu-img refused or failed to convert the image. */
export class ConversionFailedError extends VSphereError {
  readonly code = "ConversionFailed";
  constructor(
    readonly source: string,
    readonly format: string,
    /** qemu-img's own words. */
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(`${source}: qemu-img could not convert this ${format} image to a VMDK (exit ${exitCode ?? "by signal"}): ${stderr.trim() || "no message"}`);
  }
}
