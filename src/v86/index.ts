// vhost-scsi-wasm/v86 in Node.js: a virtio-scsi PCI device served by this data plane, in a v86
// emulator loaded from the installed npm package (an optional peer dependency).
//
//   const { emulator, shm, cpu } = await createV86WithSharedMemory({ v86: { bios, bzimage, ... } });
//   const disk = await attachVirtioScsi({ emulator, shm, cpu }, { luns: [{ backstore: "ram", size: 64 << 20 }] });
//   emulator.run();
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { createV86OnSharedMemory, V86_VERSION, type V86Cpu, type V86Emulator, type V86Package, type V86WithSharedMemoryOptions } from "./emulator.js";
import type { SharedMemory } from "../memory/shared-memory.js";

export * from "./exports.js";

/** The installed v86 package: its emulator class and v86.wasm; a clear error for any other version. */
export async function loadV86Package(): Promise<V86Package> {
  const require = createRequire(import.meta.url);
  let pkgPath: string;
  try {
    pkgPath = require.resolve("v86/package.json");
  } catch {
    throw new Error(`vhost-scsi-wasm/v86 needs the npm package v86@${V86_VERSION} (npm install v86@${V86_VERSION})`);
  }
  const version = String(JSON.parse(readFileSync(pkgPath, "utf8")).version);
  if (version.split("+")[0] !== V86_VERSION) {
    throw new Error(`vhost-scsi-wasm/v86 works with v86 ${V86_VERSION} exactly (it uses v86's internals); v86 ${version} is installed`);
  }
  const buildDir = join(dirname(pkgPath), "build");
  const mod = (await import(pathToFileURL(join(buildDir, "libv86.mjs")).href)) as { V86: V86Package["V86"] };
  return { V86: mod.V86, wasm: readFileSync(join(buildDir, "v86.wasm")) };
}

/**
 * Creates a v86 emulator (the installed package) whose memory is one shared WebAssembly.Memory
 * and the SharedMemory the data plane uses over it; resolves once v86 has allocated its guest
 * RAM (call `emulator.run()` after attaching devices).
 */
export async function createV86WithSharedMemory(opts: V86WithSharedMemoryOptions): Promise<{ emulator: V86Emulator; shm: SharedMemory; cpu: V86Cpu }> {
  return createV86OnSharedMemory(await loadV86Package(), opts);
}
