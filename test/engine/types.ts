// Engine-protocol harness: the shapes shared by the harness and its runner.

export interface HarnessJob {
  op: "up" | "preview" | "refresh" | "destroy";
  /** The program's entry, relative to cwd (up and preview). */
  program?: string;
  /** The program's folder: the provider process runs there too. */
  cwd: string;
  stateFile: string;
  /** Stack configuration, `namespace:key` -> value. */
  config: Record<string, string>;
  secretKeys?: string[];
  project: string;
  stack: string;
}

export interface StateResource {
  key: string;
  type: string;
  name: string;
  urn: string;
  id: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

export interface StateFile {
  resources: StateResource[];
  outputs?: Record<string, unknown>;
}

export interface HarnessEvent {
  op: "create" | "update" | "replace" | "same" | "delete" | "delete-replaced" | "drift" | "deleted-outside" | "check-failed";
  key: string;
  id?: string;
  preview?: boolean;
  replaces?: string[];
  failures?: Array<{ property: string; reason: string }>;
  changed?: Record<string, { from: unknown; to: unknown }>;
  /** update / replace: the provider's detailed diff (what a preview shows), when it gave one. */
  detailedDiff?: Record<string, { kind: string; inputDiff: boolean }>;
}

export interface HarnessResult {
  events: HarnessEvent[];
  errors: string[];
  outputs: Record<string, unknown>;
  /** How the dynamic-provider process ended when the operation was over (see DynamicProviderProcess.stop). */
  provider?: { how: "exited" | "killed"; code: number | null; signal: string | null; ms: number };
}
