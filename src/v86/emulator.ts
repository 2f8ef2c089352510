// Starting v86 over the one shared memory, on either platform: v86.wasm is rewritten at load time to import a
// shared WebAssembly.Memory the embedder created, the modules its JIT generates are rewritten
// the same way before they are instantiated, and once the emulator has allocated its guest RAM
// the memory is wrapped for the data plane (its relocated build keeps its static data at
// RELOCATED_STATIC_BASE, its heap after that; v86 owns everything below and above).
import { RELOCATED_STATIC_BASE, STATIC_AREA_END, SharedMemory, WASM_MAX_PAGES, WASM_PAGE } from "../memory/shared-memory.js";
import { importSharedMemory, moduleMemory } from "./wasm-memory.js";

/** The v86 release this integration is written against (it reaches into v86's CPU object). */
export const V86_VERSION = "0.5.462";

/** What of a v86 emulator this package uses (v86's npm build keeps these property names). */
export interface V86Cpu {
  wasm_memory: WebAssembly.Memory;
  mem8: Uint8Array;
  jit_imports: Record<string, unknown>;
  wm: { wasm_table: WebAssembly.Table };
  io: {
    /** Handlers for one port, called with `device` as this; reads take no argument, writes the value. */
    register_read(port: number, device: unknown, r8?: () => number, r16?: () => number, r32?: () => number): void;
    register_write(port: number, device: unknown, w8?: (v: number) => void, w16?: (v: number) => void, w32?: (v: number) => void): void;
  };
  devices: { pci: { register_device(d: unknown): Int32Array; raise_irq(pciId: number): void; lower_irq(pciId: number): void } };
  jit_dirty_cache(start: number, end: number): void;
  codegen_finalize(index: number, start: number, flags: number, ptr: number, len: number): void;
  codegen_finalize_finished(index: number, start: number, flags: number): void;
}

export interface V86Emulator {
  v86: { cpu: V86Cpu };
  add_listener(event: string, fn: (...a: unknown[]) => void): void;
  remove_listener(event: string, fn: (...a: unknown[]) => void): void;
  run(): void;
  stop(): Promise<void> | void;
  destroy(): Promise<void> | void;
  serial0_send(s: string): void;
  /** The whole machine (CPU, devices, RAM) as a buffer, and back into a machine configured alike. */
  save_state(): Promise<ArrayBuffer>;
  restore_state(state: ArrayBuffer): Promise<void>;
}

/** v86 as it was loaded: its emulator class and its v86.wasm. */
export interface V86Package {
  V86: new (o: object) => V86Emulator;
  wasm: Uint8Array;
}

export interface V86WithSharedMemoryOptions {
  /** v86's own options (bios, bzimage, initrd, cmdline, memory_size, ...); autostart is forced off. */
  v86: Record<string, unknown>;
  /** Bytes of device-private heap for the data plane (queue structs, RAM disks). Default 16 MiB. */
  deviceBytes?: number;
}

/**
 * Creates a v86 emulator (from the package `pkg` the entry point loaded) whose memory is one
 * shared WebAssembly.Memory and the SharedMemory the data plane uses over it; resolves once v86
 * has allocated its guest RAM (the emulator is loaded, not running: call `emulator.run()` after
 * attaching devices).
 */
export async function createV86OnSharedMemory(
  pkg: V86Package,
  opts: V86WithSharedMemoryOptions,
): Promise<{ emulator: V86Emulator; shm: SharedMemory; cpu: V86Cpu }> {
  const { V86 } = pkg;
  const original = pkg.wasm;
  const own = moduleMemory(original);
  if (!own) throw new Error("v86.wasm has no memory");
  if (own.min * WASM_PAGE > RELOCATED_STATIC_BASE) throw new Error(`v86's static data (${own.min} pages) reaches the data plane's at ${RELOCATED_STATIC_BASE}`);
  const deviceBytes = opts.deviceBytes ?? 16 << 20;
  const deviceStart = RELOCATED_STATIC_BASE + STATIC_AREA_END;
  const initial = Math.ceil((deviceStart + deviceBytes) / WASM_PAGE);
  const memory = new WebAssembly.Memory({ initial, maximum: WASM_MAX_PAGES, shared: true });
  const patched = importSharedMemory(original, "env", "memory", initial, WASM_MAX_PAGES);
  const emulator = new V86({
    ...opts.v86,
    autostart: false,
    wasm_fn: async (imports: { env: Record<string, unknown> }) => {
      const module = await WebAssembly.compile(patched as Uint8Array<ArrayBuffer>);
      const instance = await WebAssembly.instantiate(module, { ...imports, env: { ...imports.env, memory } } as WebAssembly.Imports);
      return instance.exports;
    },
  });
  await new Promise<void>((resolve) => emulator.add_listener("emulator-loaded", () => resolve()));
  const cpu = emulator.v86.cpu;
  shareJitMemory(cpu);
  const shm = SharedMemory.wrap(memory, { staticBase: RELOCATED_STATIC_BASE, deviceStart, deviceEnd: initial * WASM_PAGE });
  return { emulator, shm, cpu };
}

/**
 * The modules v86's JIT generates import its memory as a plain one; each is rewritten to import
 * it shared before it is instantiated (what cpu.codegen_finalize of v86 0.5.462 does otherwise).
 */
function shareJitMemory(cpu: V86Cpu): void {
  cpu.codegen_finalize = (index, start, flags, ptr, len) => {
    const code = new Uint8Array(new Uint8Array(cpu.wasm_memory.buffer, ptr >>> 0, len >>> 0));
    const mem = moduleMemory(code);
    const bytes = mem?.import && !mem.shared ? importSharedMemory(code, mem.import.module, mem.import.name, mem.min, WASM_MAX_PAGES) : code;
    WebAssembly.instantiate(bytes as Uint8Array<ArrayBuffer>, { e: cpu.jit_imports } as WebAssembly.Imports).then(({ instance }) => {
      cpu.wm.wasm_table.set(index + 1024, instance.exports.f as never);
      cpu.codegen_finalize_finished(index, start, flags);
    });
  };
}
