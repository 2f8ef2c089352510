// vhost-scsi-wasm in Node.js: the common API (common.ts) and the backstores only Node has, a
// file or block device and a LUN on an NBD server. A browser gets browser.ts instead (the
// package's "browser" condition).
export * from "./common.js";
export { FileBackstore, type FileOps, type FileConfig } from "./backstore/file.js";
export { NbdBackstore, parseNbdUri, type NbdConfig, type NbdAddress } from "./backstore/nbd.js";
export type { NbdTlsConfig, NbdTlsMode } from "./backstore/nbd-tls.js";
