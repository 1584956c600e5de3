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
