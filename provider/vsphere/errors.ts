// Errors of the driver core. Every error has a stable `code`: the vim fault name for
// faults the server sent (e.g. "DuplicateName"), or one of the codes below for what
// went wrong on the way there. Messages say what failed, where, and how to fix it.
import { MoRef, type VimObject, type VimValue } from "./soap/xml.js";

/** Base of every error thrown by the driver core. */
export abstract class VSphereError extends Error {
  abstract readonly code: string;
  override get name(): string {
    return this.constructor.name;
  }
}

/** The task a fault came from, when it came from a task. */
export interface TaskContext {
  task: MoRef;
  /** e.g. "VirtualMachine.clone" */
  descriptionId?: string;
  /** e.g. "CloneVM_Task" */
  name?: string;
  entityName?: string;
}

/**
 * A vim fault sent by the server, from a method call or from a task. `code` is the
 * fault's type name; subclasses exist for the faults callers handle by type, and
 * any other fault arrives as a plain VimFault that keeps its name and detail.
 */
export class VimFault extends VSphereError {
  readonly code: string;
  /** The vim25 API method whose call (or task) failed. */
  method: string | undefined;
  task: TaskContext | undefined;

  constructor(
    readonly faultName: string,
    /** The server's own message (faultstring / localizedMessage). */
    readonly serverMessage: string,
    /** The fault's detail object as parsed (its fields, e.g. invalidProperty). */
    readonly detail: VimObject = {},
  ) {
    super(serverMessage ? `${faultName}: ${serverMessage}` : faultName);
    this.code = faultName;
  }

  /** Adds where the fault happened to the message (done once, by the client). */
  attachContext(method: string, task?: TaskContext): this {
    this.method = method;
    this.task = task;
    const where = task ? `task ${task.name ?? method} (${task.task.value}${task.entityName ? ` on ${task.entityName}` : ""})` : method;
    this.message = `${where} failed: ${this.message}`;
    return this;
  }

  protected field(name: string): string | undefined {
    const v = this.detail[name];
    return typeof v === "string" ? v : undefined;
  }

  protected refField(name: string): MoRef | undefined {
    const v = this.detail[name];
    return v instanceof MoRef ? v : undefined;
  }
}

/** The session is missing or expired (the client logs in again by itself once). */
export class NotAuthenticatedFault extends VimFault {}
/** Wrong user name or password. */
export class InvalidLoginFault extends VimFault {}
/** The object a call named does not exist (any more). */
export class ManagedObjectNotFoundFault extends VimFault {
  get obj(): MoRef | undefined {
    return this.refField("obj");
  }
}
/** An object of that name exists already. */
export class DuplicateNameFault extends VimFault {
  get duplicateName(): string | undefined {
    return this.field("name");
  }
  get object(): MoRef | undefined {
    return this.refField("object");
  }
}
/** An argument was refused; `invalidProperty` is its path, e.g. "spec.deviceChange". */
export class InvalidArgumentFault extends VimFault {
  get invalidProperty(): string | undefined {
    return this.field("invalidProperty");
  }
}
/** A datastore file or folder is missing. */
export class FileNotFoundFault extends VimFault {
  get file(): string | undefined {
    return this.field("file");
  }
}
/** A datastore file or folder exists already. */
export class FileAlreadyExistsFault extends VimFault {
  get file(): string | undefined {
    return this.field("file");
  }
}

const FAULT_CLASSES: Record<string, new (name: string, message: string, detail: VimObject) => VimFault> = {
  NotAuthenticated: NotAuthenticatedFault,
  InvalidLogin: InvalidLoginFault,
  ManagedObjectNotFound: ManagedObjectNotFoundFault,
  DuplicateName: DuplicateNameFault,
  InvalidArgument: InvalidArgumentFault,
  FileNotFound: FileNotFoundFault,
  FileAlreadyExists: FileAlreadyExistsFault,
};

/** Makes the typed fault for a fault name, detail and message. */
export function vimFault(faultName: string, message: string, detail: VimObject = {}): VimFault {
  const Cls = FAULT_CLASSES[faultName] ?? VimFault;
  return new Cls(faultName, message, detail);
}

/**
 * Decodes a LocalizedMethodFault (a task's info.error): `fault` carries the typed
 * detail, `localizedMessage` the text.
 */
export function faultFromLocalized(value: VimValue | undefined): VimFault {
  const obj = (typeof value === "object" && !Array.isArray(value) && !(value instanceof MoRef) ? value : {}) as VimObject;
  const fault = obj.fault;
  const detail = (typeof fault === "object" && !Array.isArray(fault) && !(fault instanceof MoRef) ? fault : {}) as VimObject;
  const name = detail.$type ?? "VimFault";
  const message = typeof obj.localizedMessage === "string" ? obj.localizedMessage : "";
  return vimFault(name, message, detail);
}

/**
 * vCenter could not be reached, or the connection broke, on every attempt.
 * `attempts` counts them (1 + retries).
 */
export class ConnectionError extends VSphereError {
  readonly code = "ConnectionFailed";
  constructor(
    readonly endpoint: string,
    readonly method: string,
    readonly attempts: number,
    override readonly cause: unknown,
  ) {
    super(
      `${method} to ${endpoint} failed after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${describeCause(cause)}. ` +
        `Check that vCenter is up and reachable, or raise apiRetryCount.`,
    );
  }
}

/**
 * The connection broke after a call that changes state was sent, so it may or may
 * not have been applied; it was not replayed blindly. Check the object's state.
 */
export class OutcomeUnknownError extends VSphereError {
  readonly code = "OutcomeUnknown";
  constructor(
    readonly endpoint: string,
    readonly method: string,
    override readonly cause: unknown,
  ) {
    super(
      `${method} to ${endpoint}: the connection broke after the call was sent (${describeCause(cause)}), so vCenter may have ` +
        `applied it; it was not replayed because replaying ${method} is not safe without checking first`,
    );
  }
}

/** The server's certificate was not trusted, or did not match the pinned thumbprint. */
export class TlsError extends VSphereError {
  constructor(
    readonly code: "TlsVerificationFailed" | "ThumbprintMismatch",
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** vCenter is older than the driver supports (5.5.0, as Nova). */
export class UnsupportedVersionError extends VSphereError {
  readonly code = "UnsupportedVersion";
  constructor(
    readonly endpoint: string,
    readonly version: string,
    readonly minimum: string,
  ) {
    super(`${endpoint} runs vCenter ${version}; the driver supports vCenter ${minimum} and later. Upgrade vCenter.`);
  }
}

/** An HTTP answer that is neither a SOAP response nor a SOAP fault. */
export class HttpError extends VSphereError {
  readonly code = "HttpError";
  constructor(
    readonly endpoint: string,
    readonly method: string,
    readonly status: number,
    body: string,
  ) {
    super(`${method} to ${endpoint}: HTTP ${status}${body ? `: ${body.slice(0, 200)}` : ""}`);
  }
}

/** The server's answer could not be understood. */
export class ProtocolError extends VSphereError {
  readonly code = "ProtocolError";
}

/** A task did not finish in time (the task itself goes on in vCenter). */
export class TaskTimeoutError extends VSphereError {
  readonly code = "TaskTimeout";
  constructor(
    readonly task: MoRef,
    readonly timeoutMs: number,
  ) {
    super(`task ${task.value} did not finish within ${Math.round(timeoutMs / 1000)} s; it may still be running in vCenter`);
  }
}

/** What a look-up was for: callers map it to the input that named it. */
export type NotFoundKind = "datacenter" | "cluster" | "host" | "vswitch" | "switch" | "portgroup" | "network" | "datastore" | "vm" | "resourcePool" | "folder" | "image" | "object";

/**
 * A look-up found nothing (a cluster, datastore, network or VM by name), or found
 * several where one was wanted (`ambiguous`). `kind` says what was looked for and
 * `wanted` the name asked for, so callers blame the right input without reading the
 * message.
 */
export class NotFoundError extends VSphereError {
  readonly code = "NotFound";
  constructor(
    message: string,
    readonly kind: NotFoundKind = "object",
    /** The name that was looked for, when there was one. */
    readonly wanted?: string,
    readonly ambiguous = false,
  ) {
    super(message);
  }
}

export function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === "string" && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message;
  }
  return String(cause);
}

/**
 * The endpoint cannot be right whatever happens on the network (a port or a scheme
 * in the host name, spaces, an unparsable URL): reported at once, never retried.
 */
export class InvalidEndpointError extends VSphereError {
  readonly code = "InvalidEndpoint";
  constructor(
    readonly host: string,
    readonly reason: string,
  ) {
    super(`vCenter host ${JSON.stringify(host)}: ${reason}`);
  }
}

/** The server answered the TLS handshake with something else (plain HTTP, most likely). */
export class NotTlsError extends VSphereError {
  readonly code = "NotTls";
  constructor(
    readonly host: string,
    readonly port: number,
    override readonly cause?: unknown,
  ) {
    super(
      `the server at ${host}:${port} does not speak TLS (is it plain HTTP? ${describeCause(cause)}). ` +
        `Point the client at vCenter's HTTPS port (443 unless changed), or use protocol "http" for a server without TLS.`,
    );
  }
}

/** A datastore path that cannot be read ("[datastore] folder/file"). */
export class InvalidDatastorePathError extends VSphereError {
  readonly code = "InvalidDatastorePath";
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`datastore path ${JSON.stringify(path)}: ${reason} (want "[datastore] folder/file")`);
  }
}

/** Why one datastore was not chosen. */
export interface DatastoreRejection {
  name: string;
  reasons: string[];
}

/**
 * No datastore of the cluster can take the image or disk: `rejected` lists every
 * candidate and why (name pattern, type, maintenance, a host without it, free space).
 */
export class NoSuitableDatastoreError extends VSphereError {
  readonly code = "NoSuitableDatastore";
  constructor(
    readonly cluster: string,
    readonly rejected: DatastoreRejection[],
    readonly requiredBytes: number | undefined,
  ) {
    const list = rejected.map((r) => `${r.name}: ${r.reasons.join("; ")}`).join(", ");
    super(
      `no datastore of cluster ${cluster} fits${requiredBytes !== undefined ? ` ${requiredBytes} bytes` : ""}: ` +
        (rejected.length ? list : "the cluster has no datastores"),
    );
  }
}

/**
 * An upload to a datastore was cut once bytes had gone out: the file may be missing,
 * partial, or (rarely) complete; the outcome is unknown. It was not resent. Delete the
 * file (deleteFile) before trying again.
 */
export class UploadIncompleteError extends VSphereError {
  readonly code = "UploadIncomplete";
  constructor(
    /** The datastore path, "[ds] folder/file". */
    readonly path: string,
    readonly endpoint: string,
    readonly bytesSent: number,
    readonly length: number,
    override readonly cause: unknown,
  ) {
    super(
      `upload to ${path} (${endpoint}) was cut after ${bytesSent} of ${length} bytes were sent (${describeCause(cause)}): the outcome is unknown and ` +
        `the file may be partial; it was not resent. Delete it before uploading again.`,
    );
  }
}

/** The source of an upload failed, or gave a different number of bytes than announced. */
export class UploadSourceError extends VSphereError {
  readonly code = "UploadSourceFailed";
  constructor(
    /** The datastore path, "[ds] folder/file". */
    readonly path: string,
    readonly endpoint: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`upload to ${path} (${endpoint}): ${message}${cause ? ` (${describeCause(cause)})` : ""}; the file in the datastore may be partial: delete it`);
  }
}
