export declare const VCSIM_SOURCE_DIR: string;
export declare const PROJECT_ROOT: string;
export declare const GOPATH: string;
export declare function goVersion(): string | undefined;
export declare function govmomiPresent(): boolean;
/** Path of an up-to-date simulator binary, built if its sources changed. */
export declare function ensureVcsim(options?: { quiet?: boolean }): string;
