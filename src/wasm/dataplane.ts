import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { STATIC_AREA_END, type SharedMemory } from "../memory/shared-memory.js";

/** Raw exports of the AssemblyScript data plane (assembly/index.ts). u32 results arrive as i32. */
export interface DataplaneExports {
  static_end(): number;
  instance_init(base: number): void;
  instance_area_size(): number;
  memtable_size(): number;
  memtable_set_region(mt: number, i: number, gpa: bigint, size: bigint, uaddr: bigint): void;
  memtable_set_count(mt: number, n: number): void;
  vq_size(): number;
  vq_setup(vq: number, num: number, features: number, desc: number, avail: number, used: number, mt: number): void;
  vq_set_memtable(vq: number, mt: number): void;
  vq_set_base(vq: number, base: number): void;
  vq_set_used_base(vq: number, idx: number): void;
  vq_last_avail_idx(vq: number): number;
  vq_last_used_idx(vq: number): number;
  vq_error(vq: number): number;
  vq_error_count(vq: number): number;
  vq_error_info(vq: number): number;
  vq_inflight(vq: number): number;
  vq_popped(vq: number): bigint;
  vq_completed(vq: number): bigint;
  vq_signals(vq: number): bigint;
  vq_clear_error(vq: number): void;
  iov_array_size(): number;
  vq_pop(vq: number): number;
  chain_iov_ptr(): number;
  vq_push_used(vq: number, head: number, len: number): void;
  vq_flush(vq: number): number;
  vq_notify_enable(vq: number): number;
  vq_notify_disable(vq: number): void;
  echo_drain(vq: number, weight: number): number;
  /** dev: a NullDevice struct { replyLen u32 } in the device heap. */
  null_drain(vq: number, dev: number, weight: number): number;
}

/** vq_drain() result bits (assembly/defs.ts). */
export const DRAIN_SIGNAL = 1;
export const DRAIN_MORE = 2;
export const DRAIN_ERROR = 4;
export const DRAIN_USED = 8;

/** vq_pop() result for a queue error (VQ_NO_HEAD as a u32). */
export const VQ_NO_HEAD = 0xffffffff;

let compiled: WebAssembly.Module | undefined;

function wasmPath(): string {
  // dist/src/wasm/dataplane.js -> dist/dataplane.wasm; src/wasm/dataplane.ts -> dist/dataplane.wasm
  for (const rel of ["../../dataplane.wasm", "../../dist/dataplane.wasm"]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error("dataplane.wasm not found: run `npm run build`");
}

/** The compiled data plane module (compiled once per thread; a Module can be posted to workers). */
export function dataplaneModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(readFileSync(wasmPath()));
  return compiled;
}

/**
 * Instantiates the data plane over the shared memory and binds it to its per-instance area
 * (instance_area_size() bytes the caller allocated from the device heap).
 */
export function instantiateDataplane(
  memory: WebAssembly.Memory,
  instanceArea: number,
  module: WebAssembly.Module = dataplaneModule(),
): DataplaneExports {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort: (_msg: number, _file: number, line: number, col: number) => {
        throw new Error(`data plane abort at ${line}:${col}`);
      },
    },
  });
  const dp = instance.exports as unknown as DataplaneExports;
  if (instanceArea !== 0) dp.instance_init(instanceArea);
  return dp;
}

/** A data plane instance bound to its own scratch area in the device heap. */
export interface DataplaneInstance {
  readonly dp: DataplaneExports;
  readonly area: number;
}

/**
 * Instantiates the data plane over shm and gives it a per-instance area from the device heap.
 * Checks that the module's static data fits below the device heap.
 */
export function createDataplane(shm: SharedMemory, module: WebAssembly.Module = dataplaneModule()): DataplaneInstance {
  const dp = instantiateDataplane(shm.memory, 0, module);
  if (dp.static_end() > STATIC_AREA_END) {
    throw new Error(`data plane static data ends at ${dp.static_end()}, past ${STATIC_AREA_END}`);
  }
  const area = shm.device.alloc(dp.instance_area_size(), 16);
  dp.instance_init(area);
  return { dp, area };
}
