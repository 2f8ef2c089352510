// vhost-scsi-wasm/abi: the data plane's raw interface, for code that instantiates the module
// itself: the builds, the generated export lists and constants (written once, in assembly/),
// and the shared memory's fixed layout.
export * from "./wasm/dataplane.js";
export { WASM_PAGE, WASM_MAX_PAGES, STATIC_AREA_END, RELOCATED_STATIC_BASE } from "./memory/shared-memory.js";
export { RangeAllocator, type Allocation } from "./memory/range-allocator.js";
