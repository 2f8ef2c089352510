import { platform } from "#platform";
import { RELOCATED_STATIC_BASE, STATIC_AREA_END, type SharedMemory } from "../memory/shared-memory.js";
import { IOVEC_ARRAY_ENTRIES, IOVEC_SIZE, type DataplaneExports } from "./abi.generated.js";

export * from "./abi.generated.js";

/**
 * An iovec array the data plane wrote (chain_iov_ptr(), scsi_slot_data()): { count u32, out u32,
 * [base u32, len u32] * count }. Returns how many are device-readable and the (offset, length) pairs.
 */
export function readIovecs(view: DataView, ptr: number): { out: number; entries: [number, number][] } {
  const count = view.getUint32(ptr, true);
  const entries: [number, number][] = [];
  for (let i = 0, at = ptr + IOVEC_ARRAY_ENTRIES; i < count; i++, at += IOVEC_SIZE) entries.push([view.getUint32(at, true), view.getUint32(at + 4, true)]);
  return { out: view.getUint32(ptr + 4, true), entries };
}

/**
 * The compiled data plane module: the default build, or with `staticBase` the relocated one
 * whose static data starts there.
 */
export function dataplaneModule(staticBase = 0): WebAssembly.Module {
  if (staticBase !== 0 && staticBase !== RELOCATED_STATIC_BASE) throw new RangeError(`no data plane build with static data at ${staticBase}`);
  return platform.wasmModule(staticBase === 0 ? "dataplane.wasm" : "dataplane-reloc.wasm");
}

/** The test build (assembly/testing.ts): the data plane plus the test devices and step-by-step ring calls. */
export function dataplaneTestModule(): WebAssembly.Module {
  return platform.wasmModule("dataplane-testing.wasm");
}

/**
 * Instantiates the data plane over the shared memory and binds it to its per-instance area
 * (instance_area_size() bytes the caller allocated from the device heap).
 */
export function instantiateDataplane<E extends DataplaneExports = DataplaneExports>(
  memory: WebAssembly.Memory,
  instanceArea: number,
  module: WebAssembly.Module = dataplaneModule(),
): E {
  const instance = new WebAssembly.Instance(module, {
    env: {
      memory,
      abort: (_msg: number, _file: number, line: number, col: number) => {
        throw new Error(`data plane abort at ${line}:${col}`);
      },
    },
  });
  const dp = instance.exports as unknown as E;
  if (instanceArea !== 0) dp.instance_init(instanceArea);
  return dp;
}

/** A data plane instance bound to its own scratch area in the device heap. */
export interface DataplaneInstance<E extends DataplaneExports = DataplaneExports> {
  readonly dp: E;
  readonly area: number;
}

/**
 * Instantiates the data plane over shm and gives it a per-instance area from the device heap.
 * Checks that the module's static data fits below the device heap.
 */
export function createDataplane<E extends DataplaneExports = DataplaneExports>(
  shm: SharedMemory,
  module: WebAssembly.Module = dataplaneModule(shm.staticBase),
): DataplaneInstance<E> {
  const dp = instantiateDataplane<E>(shm.memory, 0, module);
  if (dp.static_end() > shm.staticBase + STATIC_AREA_END) {
    throw new Error(`data plane static data ends at ${dp.static_end()}, past ${shm.staticBase + STATIC_AREA_END}`);
  }
  const area = shm.device.alloc(dp.instance_area_size(), 16, "data plane instance area");
  dp.instance_init(area);
  return { dp, area };
}
