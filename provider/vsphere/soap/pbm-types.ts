// The few SPBM (storage policy, urn:pbm) data types and methods the driver sends, in
// the notation of vim-types.ts (fields in XSD sequence order; see its header), so the
// writer orders and checks PBM requests as it does vim25 ones. Written by hand from
// the SPBM API reference (govmomi's pbm/types agrees); add a type here before sending it.

/** PBM data object -> "[<Base] field field ...". */
export const PBM_TYPES: Readonly<Record<string, string>> = {
  PbmProfileResourceType: "resourceType",
  PbmProfileId: "uniqueId",
  PbmPlacementHub: "hubType hubId",
};

/** PBM method -> its arguments after _this. */
export const PBM_METHODS: Readonly<Record<string, string>> = {
  PbmRetrieveServiceContent: "",
  PbmQueryProfile: "resourceType:PbmProfileResourceType profileCategory",
  PbmRetrieveContent: "profileIds:PbmProfileId[]",
  PbmQueryMatchingHub: "hubsToSearch:PbmPlacementHub[] profile:PbmProfileId",
};
