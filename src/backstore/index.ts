// The backstore types this package knows, registered by name: one line each.
import { nullBackstoreType, ramBackstoreType, registerBackstore } from "./backstore.js";
import { fileBackstoreType } from "./file.js";

registerBackstore(ramBackstoreType);
registerBackstore(nullBackstoreType);
registerBackstore(fileBackstoreType);

export * from "./backstore.js";
