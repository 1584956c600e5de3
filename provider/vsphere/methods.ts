// The vim25 methods the driver calls, and what the client must know of each: may it
// be replayed after a connection broke once it was sent, does it answer with a Task,
// and (optionally) the schema of its answer. A method missing from the table is
// treated as not replay-safe: it is checked (checkApplied) or reported as
// OutcomeUnknown, never resent blindly.
import { z } from "zod";
import { dataObject, dateTime, moRef, str } from "./schema.js";

export interface MethodInfo {
  /**
   * Replaying it after a broken connection is harmless: it only reads, or repeating
   * it leaves the same state (a duplicate view or session dies with the session).
   */
  replaySafe: boolean;
  /** It answers with a Task moref at once and does its work in that task. */
  returnsTask: boolean;
  /** Its `returnval`, checked by the client when given. */
  result?: z.ZodType;
}

export const ServiceContentSchema = dataObject({
  about: dataObject({
    name: str,
    fullName: str,
    vendor: str,
    version: str,
    build: str,
    apiType: str,
    apiVersion: str,
    instanceUuid: str.optional(),
  }),
  rootFolder: moRef,
  propertyCollector: moRef,
  viewManager: moRef.optional(),
  sessionManager: moRef.optional(),
  searchIndex: moRef.optional(),
  fileManager: moRef.optional(),
  virtualDiskManager: moRef.optional(),
  ovfManager: moRef.optional(),
  customFieldsManager: moRef.optional(),
  taskManager: moRef.optional(),
});

export const UserSessionSchema = dataObject({ key: str, userName: str, fullName: str.optional() });

const read = (result?: z.ZodType): MethodInfo => ({ replaySafe: true, returnsTask: false, ...(result ? { result } : {}) });
const change = (result?: z.ZodType): MethodInfo => ({ replaySafe: false, returnsTask: false, ...(result ? { result } : {}) });
/** A `*_Task` method: the answer is the task. */
const task = (replaySafe = false): MethodInfo => ({ replaySafe, returnsTask: true, result: moRef });

export const METHODS: Readonly<Record<string, MethodInfo>> = {
  // Session and service
  RetrieveServiceContent: read(ServiceContentSchema),
  Login: read(UserSessionSchema),
  Logout: read(),
  CurrentTime: read(dateTime),
  SessionIsActive: read(),
  // Property collector and views
  RetrieveProperties: read(),
  RetrievePropertiesEx: read(),
  ContinueRetrievePropertiesEx: read(),
  CancelRetrievePropertiesEx: read(),
  WaitForUpdatesEx: read(),
  CheckForUpdates: read(),
  CreateContainerView: read(moRef),
  CreateListView: read(moRef),
  CreatePropertyCollector: read(moRef),
  CreateFilter: read(moRef),
  DestroyView: read(),
  DestroyPropertyCollector: read(),
  DestroyPropertyFilter: read(),
  // Search
  FindByUuid: read(),
  FindAllByUuid: read(),
  FindByInventoryPath: read(),
  FindByIp: read(),
  FindByDnsName: read(),
  FindChild: read(),
  SearchDatastore_Task: task(true),
  SearchDatastoreSubFolders_Task: task(true),
  QueryConfigOption: read(),
  QueryConfigOptionDescriptor: read(),
  QueryConfigTarget: read(),
  QueryTargetCapabilities: read(),
  QueryVirtualDiskUuid: read(),
  QueryAvailablePerfMetric: read(),
  HttpNfcLeaseProgress: read(),
  // SPBM (pbm.ts), on /pbm: reads
  PbmRetrieveServiceContent: read(),
  PbmQueryProfile: read(),
  PbmRetrieveContent: read(),
  PbmQueryMatchingHub: read(),
  RefreshDatastore: read(),
  // Changes: checked before any replay
  CreateFolder: change(moRef),
  MakeDirectory: change(),
  AddPortGroup: change(),
  UpdatePortGroup: change(),
  RemovePortGroup: change(),
  AddDVPortgroup_Task: task(),
  ReconfigureDVPortgroup_Task: task(),
  Destroy_Task: task(),
  Rename_Task: task(),
  ReconfigVM_Task: task(),
  PowerOnVM_Task: task(),
  PowerOffVM_Task: task(),
  SuspendVM_Task: task(),
  CloneVM_Task: task(),
  CreateVM_Task: task(),
  RegisterVM_Task: task(),
  DeleteDatastoreFile_Task: task(),
  MoveDatastoreFile_Task: task(),
  CopyDatastoreFile_Task: task(),
  CopyVirtualDisk_Task: task(),
  CreateVirtualDisk_Task: task(),
  MoveVirtualDisk_Task: task(),
  ExtendVirtualDisk_Task: task(),
  DeleteVirtualDisk_Task: task(),
  EnterMaintenanceMode_Task: task(),
  ExitMaintenanceMode_Task: task(),
  ImportVApp: change(moRef),
  HttpNfcLeaseComplete: change(),
  HttpNfcLeaseAbort: change(),
  // Checked by whether the VM is still registered (nfc-import.ts).
  UnregisterVM: change(),
};

/** What the client knows of a method; an unknown one is not replay-safe. */
export function methodInfo(method: string): MethodInfo {
  return METHODS[method] ?? { replaySafe: false, returnsTask: method.endsWith("_Task") };
}

/** The replay-safe methods of the table (kept for callers of the former set). */
export const REPLAY_SAFE_METHODS: ReadonlySet<string> = new Set(
  Object.entries(METHODS)
    .filter(([, m]) => m.replaySafe)
    .map(([name]) => name),
);
