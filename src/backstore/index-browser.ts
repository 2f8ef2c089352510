// The backstore types a browser has, registered by name: RAM and null served in place, and the
// Origin Private File System (a file that survives reloads).
import { nullBackstoreType, ramBackstoreType, registerBackstore } from "./backstore.js";
import { opfsBackstoreType } from "./opfs.js";

registerBackstore(ramBackstoreType);
registerBackstore(nullBackstoreType);
registerBackstore(opfsBackstoreType);

export * from "./backstore.js";
