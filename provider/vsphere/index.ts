/**
 * The vSphere driver core: vim25 SOAP, sessions, property collector, tasks,
 * inventory, datastores, transfers. It knows nothing of Pulumi, so it can be used
 * as a plain library and from a command line.
 */

/** The oldest vCenter the driver accepts (the seed: "vCenter version 5.5.0 and later"). */
export const MINIMUM_VCENTER_VERSION = "5.5.0";
