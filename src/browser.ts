// vhost-scsi-wasm in a browser: the common API (common.ts) and the OPFS backstore, a LUN whose
// blocks survive reloads. Importing it fetches and compiles the data plane (a page's main thread
// may not compile it synchronously). The page must be cross-origin isolated (COOP same-origin,
// COEP require-corp): SharedArrayBuffer and a shared WebAssembly.Memory need it.
import { preloadWasm } from "./sys/platform-browser.js";

if (!globalThis.crossOriginIsolated)
  throw new Error(
    "vhost-scsi-wasm needs a cross-origin isolated page (Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy: require-corp) for its shared memory",
  );
await preloadWasm();

export * from "./common.js";
export { OpfsBackstore, type OpfsConfig } from "./backstore/opfs.js";
export { preloadWasm };
