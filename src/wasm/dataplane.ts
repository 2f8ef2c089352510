import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RELOCATED_STATIC_BASE, STATIC_AREA_END, type SharedMemory } from "../memory/shared-memory.js";

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
  vq_last_error(vq: number): number;
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
  vq_set_private(vq: number, data: number): void;

  // virtio-scsi device (assembly/index.ts)
  scsi_device_size(): number;
  scsi_tpg_size(): number;
  scsi_lun_size(): number;
  scsi_dev_set_features(dev: number, features: number): void;
  scsi_dev_set_tpg(dev: number, tag: number, tpg: number): void;
  scsi_dev_set_ctx_table(dev: number, q: number, table: number): void;
  scsi_dev_events_missed(dev: number): number;
  scsi_dev_set_events_missed(dev: number, v: number): void;
  scsi_post_event(dev: number, event: number, target: number, lun: number, reason: number): number;
  scsi_tpg_init(tpg: number, tag: number): void;
  scsi_tpg_set_lun(tpg: number, id: number, lun: number): void;
  scsi_lun_init(lun: number, id: number, backstore: number, blockShift: number, nblocks: number, at: number, flags: number, port: number): void;
  scsi_lun_set_limits(lun: number, maxXfer: number, maxUnmap: number, maxUnmapDescs: number, maxWs: number): void;
  scsi_lun_set_backing(lun: number, nblocks: number, ram: number): void;
  scsi_lun_flags(lun: number): number;
  scsi_lun_update_flags(lun: number, set: number, clear: number): void;
  scsi_lun_raise_ua(lun: number, bits: number): void;
  scsi_lun_ua(lun: number): number;
  scsi_lun_inflight(lun: number): number;
  scsi_lun_ident(lun: number, field: number): number;
  scsi_lun_ident_len(field: number): number;
  scsi_req_drain(vq: number, dev: number, weight: number, polling: boolean): number;
  scsi_req_reap(vq: number): number;
  scsi_ctl_drain(vq: number, dev: number, weight: number): number;
  scsi_ctl_poll(vq: number, dev: number): number;
  scsi_evt_drain(vq: number, dev: number): number;

  // backstores served elsewhere (assembly/scsi/ioring.ts): sizes, set-up, the fence
  scsi_ctx_table_size(capacity: number): number;
  scsi_cq_size(entries: number): number;
  scsi_bounce_size(): number;
  scsi_ctx_table_init(table: number, capacity: number, cq: number, entries: number, bounce: number): void;
  scsi_cq_set_doorbell(cq: number, doorbell: number): void;
  scsi_cq_submitted(cq: number): number;
  scsi_cq_finished(cq: number): number;
  scsi_sq_size(entries: number): number;
  scsi_sq_init(sq: number, entries: number): void;
  scsi_remote_max_ranges(): number;
  // and their layout (read by src/backstore/ring.ts)
  IOCTX_STATE: WebAssembly.Global;
  IOCTX_INDEX: WebAssembly.Global;
  IOCTX_CQ: WebAssembly.Global;
  IOCTX_OP: WebAssembly.Global;
  IOCTX_FLAGS: WebAssembly.Global;
  IOCTX_OFFSET: WebAssembly.Global;
  IOCTX_LENGTH: WebAssembly.Global;
  IOCTX_EXTENTS: WebAssembly.Global;
  SQ_MASK: WebAssembly.Global;
  SQ_DEQUEUE: WebAssembly.Global;
  SQ_WAKE: WebAssembly.Global;
  SQ_SLEEPERS: WebAssembly.Global;
  SQ_CELLS: WebAssembly.Global;
  CQ_MASK: WebAssembly.Global;
  CQ_TAIL: WebAssembly.Global;
  CQ_DOORBELL: WebAssembly.Global;
  CQ_FINISHED: WebAssembly.Global;
  CQ_CELLS: WebAssembly.Global;
  CQ_CELL_SIZE: WebAssembly.Global;
  scsi_opcode_count(): number;
  scsi_opcode_row(i: number): number;
}

/** scsi_ctl_poll() bit: some TMF still waits for aborted requests. */
export const CTL_TMF_PENDING = 32;

/** vq_drain() result bits (assembly/defs.ts). */
export const DRAIN_SIGNAL = 1;
export const DRAIN_MORE = 2;
export const DRAIN_ERROR = 4;
export const DRAIN_USED = 8;
export const DRAIN_STALLED = 16;

/**
 * An iovec array the data plane wrote (chain_iov_ptr(), scsi_slot_data()): { count u32, out u32,
 * [base u32, len u32] * count }. Returns how many are device-readable and the (offset, length) pairs.
 */
export function readIovecs(view: DataView, ptr: number): { out: number; entries: [number, number][] } {
  const count = view.getUint32(ptr, true);
  const entries: [number, number][] = [];
  for (let i = 0; i < count; i++) entries.push([view.getUint32(ptr + 8 + 8 * i, true), view.getUint32(ptr + 12 + 8 * i, true)]);
  return { out: view.getUint32(ptr + 4, true), entries };
}

/** vq_pop() result for a queue error (VQ_NO_HEAD as a u32). */
export const VQ_NO_HEAD = 0xffffffff;

const compiled = new Map<string, WebAssembly.Module>();

function wasmPath(file: string): string {
  // dist/src/wasm/dataplane.js -> dist/<file>; src/wasm/dataplane.ts -> dist/<file>
  for (const rel of [`../../${file}`, `../../dist/${file}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error(`${file} not found: run \`npm run build\``);
}

/**
 * The compiled data plane module (compiled once per thread; a Module can be posted to workers):
 * the default build, or with `staticBase` the relocated one whose static data starts there.
 */
export function dataplaneModule(staticBase = 0): WebAssembly.Module {
  if (staticBase !== 0 && staticBase !== RELOCATED_STATIC_BASE) throw new RangeError(`no data plane build with static data at ${staticBase}`);
  const file = staticBase === 0 ? "dataplane.wasm" : "dataplane-reloc.wasm";
  let m = compiled.get(file);
  if (!m) compiled.set(file, (m = new WebAssembly.Module(readFileSync(wasmPath(file)))));
  return m;
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
export function createDataplane(shm: SharedMemory, module: WebAssembly.Module = dataplaneModule(shm.staticBase)): DataplaneInstance {
  const dp = instantiateDataplane(shm.memory, 0, module);
  if (dp.static_end() > shm.staticBase + STATIC_AREA_END) {
    throw new Error(`data plane static data ends at ${dp.static_end()}, past ${shm.staticBase + STATIC_AREA_END}`);
  }
  const area = shm.device.alloc(dp.instance_area_size(), 16, "data plane instance area");
  dp.instance_init(area);
  return { dp, area };
}
