// What `require("vhost-scsi-wasm")` gets: the package is ES modules only (its data plane loads
// with top-level await and import.meta), so require() is told how to load it instead.
throw new Error(
  'vhost-scsi-wasm is an ES module package: load it with `import { ... } from "vhost-scsi-wasm"`, or from CommonJS with `await import("vhost-scsi-wasm")`',
);
