// The backstore types this package knows, registered by name: one line each.
import { nullBackstoreType, ramBackstoreType, registerBackstore } from "./backstore.js";
import { fileBackstoreType } from "./file.js";
import { nbdBackstoreType } from "./nbd.js";

registerBackstore(ramBackstoreType);
registerBackstore(nullBackstoreType);
registerBackstore(fileBackstoreType);
registerBackstore(nbdBackstoreType);

export * from "./backstore.js";
