// vhost-scsi-wasm/v86 in a browser: the same virtio-scsi device in a v86 emulator running in the
// page, v86 loaded from where the page serves its build (libv86.mjs and v86.wasm of
// v86@0.5.462, e.g. node_modules/v86/build/). The page must be cross-origin isolated.
import { preloadWasm } from "../sys/platform-browser.js";
import { createV86OnSharedMemory, V86_VERSION, type V86Cpu, type V86Emulator, type V86Package, type V86WithSharedMemoryOptions } from "./emulator.js";
import type { SharedMemory } from "../memory/shared-memory.js";

export * from "./exports.js";

/** v86 from the folder at `base` (a URL ending in "/"): libv86.mjs and v86.wasm of v86 V86_VERSION. */
export async function loadV86FromUrl(base: string | URL): Promise<V86Package> {
  const at = (f: string) => new URL(f, new URL(base, globalThis.location?.href)).href;
  const mod = (await import(/* @vite-ignore */ at("libv86.mjs"))) as { V86?: V86Package["V86"] };
  if (!mod.V86) throw new Error(`${at("libv86.mjs")} is not v86's build (v86@${V86_VERSION})`);
  const res = await fetch(at("v86.wasm"));
  if (!res.ok) throw new Error(`${at("v86.wasm")}: HTTP ${res.status}`);
  // The data plane's relocated build, compiled before the device needs it (no synchronous compile on a page's main thread).
  await preloadWasm(["dataplane-reloc.wasm"]);
  return { V86: mod.V86, wasm: new Uint8Array(await res.arrayBuffer()) };
}

/**
 * Creates a v86 emulator (loaded from `v86Base`, a URL of v86's build folder) whose memory is one
 * shared WebAssembly.Memory and the SharedMemory the data plane uses over it; resolves once v86
 * has allocated its guest RAM (call `emulator.run()` after attaching devices).
 */
export async function createV86WithSharedMemory(
  opts: V86WithSharedMemoryOptions & { v86Base: string | URL },
): Promise<{ emulator: V86Emulator; shm: SharedMemory; cpu: V86Cpu }> {
  return createV86OnSharedMemory(await loadV86FromUrl(opts.v86Base), opts);
}
