// The benchmark's guest load engine (its own module, dist/guest-engine.wasm): what a fio job
// does on a polled virtio-scsi or virtio-blk request queue, in WebAssembly as fio's engines are
// native code. Per request slot a fixed chain of three descriptors (virtio-scsi: request header,
// response, data, VIRTIO 1.2 5.6.6; virtio-blk: header, data, status byte, 5.2.6) carries a
// READ(16), WRITE(16) or UNMAP (SBC-4 5.31, one block descriptor), or an IN, OUT or DISCARD;
// reads, writes and trims may differ in size; avail->idx is published once per pass and the
// device kicked only when avail_event asks for it (2.7.10); used entries are reaped by polling,
// each response checked, its latency recorded in a log-linear histogram, and with verify every
// written block stamped and every block read checked. A failed request is not counted as
// done; the first one's status and sense are kept for the report. With a limit on the requests
// started (fio's rate_iops) a slot whose request came back waits idle until the caller's next
// pass allows one more. The TypeScript job thread calls pass() once per batch and writes the
// kick eventfds this reports.
//
// All state lives in memory the caller hands in (guest RAM: this is the guest's program); the
// module has no static data, so it can share the memory with the data plane.
import { vring_need_event } from "../queue";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../defs";
import { CMD_REQ_SIZE, CMD_RESP_SIZE, READ_16, UNMAP, WRITE_16 } from "../scsi/constants";
import { VIRTIO_BLK_DWZ_SEG_SIZE, VIRTIO_BLK_OUTHDR_SIZE, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT } from "../blk/constants";

/** The device a job drives (engine_init's `device`). */
export const ENGINE_DEVICE_SCSI: u32 = 0;
export const ENGINE_DEVICE_BLK: u32 = 1;

// ---- job state (bytes from the state pointer) ----
const J_QUEUES: usize = 0;
const J_BS: usize = 4; // reads and trims
const J_BLOCK_SIZE: usize = 8;
const J_MODE: usize = 12;
const J_MIX: usize = 16;
const J_BLOCKS: usize = 20; // verify: blocks of J_BS in the region
const J_SEED: usize = 24;
const J_BS_WRITE: usize = 28;
const J_GEN: usize = 32;
const J_STOPPING: usize = 36;
const J_KICKS: usize = 40;
const J_PHASE: usize = 44;
const J_CURSOR: usize = 48;
const J_QTAB: usize = 52;
const J_GENS: usize = 56;
const J_BUSY: usize = 60;
const J_HIST: usize = 64;
const J_IDLE: usize = 68; // slots waiting for the limit to allow a request
const J_REGION: usize = 72; // u64: the region's first byte
const J_NOW: usize = 80; // u64 ns of the current pass
const J_REGION_BYTES: usize = 88; // u64
const J_SEQ_OFF: usize = 96; // u64: the next sequential request's offset in the region
const J_STARTED: usize = 104; // u64: requests started in the run phase
const J_LIMIT: usize = 112; // u64: how many may have been started by now
const J_FIRST_ERR: usize = 120; // ERR_* bytes: the first failed request
const J_DEVICE: usize = 144; // ENGINE_DEVICE_*
const J_COUNTERS: usize = 160; // u64 each, COUNTER_*
const COUNTERS: usize = 12;
const J_SIZE: usize = J_COUNTERS + 8 * COUNTERS;

/** The first failed request (J_FIRST_ERR + ERR_*): whether there is one, its op, the response, sense, offset. */
const ERR_SET: usize = 0; // u8 1 once set
const ERR_OP: usize = 1; // u8 0 read, 1 write, 2 trim
const ERR_RESPONSE: usize = 2; // u8 virtio-scsi response, or virtio-blk status
const ERR_STATUS: usize = 3; // u8 SCSI status
const ERR_KEY: usize = 4; // u8 sense key
const ERR_ASC: usize = 5;
const ERR_ASCQ: usize = 6;
const ERR_OFFSET: usize = 8; // u64 byte offset on the LUN
const ERR_LENGTH: usize = 16; // u32 bytes

/** Counters the caller reads (engine_counter). */
export const COUNTER_READ_IOS: u32 = 0;
export const COUNTER_READ_BYTES: u32 = 1;
export const COUNTER_WRITE_IOS: u32 = 2;
export const COUNTER_WRITE_BYTES: u32 = 3;
export const COUNTER_ERRORS: u32 = 4;
export const COUNTER_MISMATCHES: u32 = 5;
export const COUNTER_VERIFIED: u32 = 6;
export const COUNTER_READ_LAT_NS: u32 = 7;
export const COUNTER_WRITE_LAT_NS: u32 = 8;
export const COUNTER_TRIM_IOS: u32 = 9;
export const COUNTER_TRIM_BYTES: u32 = 10;
export const COUNTER_TRIM_LAT_NS: u32 = 11;

/** J_MODE bits. */
export const MODE_SEQUENTIAL: u32 = 1;
export const MODE_MIXED: u32 = 2;
export const MODE_ALL_READS: u32 = 4;
export const MODE_VERIFY: u32 = 8;
export const MODE_TRIM: u32 = 16;

/** A request's operation (S_OP, ERR_OP, the histogram's index). */
const OP_READ: u8 = 0;
const OP_WRITE: u8 = 1;
const OP_TRIM: u8 = 2;
/** The UNMAP parameter list: 8-byte header, one 16-byte block descriptor (SBC-4 5.31.2). */
const UNMAP_LIST: u32 = 24;

/** Phases: the timed run; writing the whole region first (verify on reads); reading back what was written. */
export const PHASE_RUN: u32 = 0;
export const PHASE_FILL: u32 = 1;
export const PHASE_READBACK: u32 = 2;

// ---- queue state ----
const Q_DESC: usize = 0;
const Q_AVAIL: usize = 4;
const Q_USED: usize = 8;
const Q_MASK: usize = 12;
const Q_DEPTH: usize = 16;
const Q_BUF_HVA: usize = 20;
const Q_BUF_GPA: usize = 24; // u64
const Q_AVAIL_SHADOW: usize = 32;
const Q_KICKED: usize = 36;
const Q_LAST_USED: usize = 40;
const Q_TAG: usize = 44;
const Q_SLOTS: usize = 48;
const Q_SIZE: usize = 56;

// ---- slot state ----
const S_BLOCK: usize = 0; // verify: the block (of J_BS)
const S_OP: usize = 4; // u8 OP_*
const S_LAYOUT: usize = 5; // u8: the OP_* the chain is laid out for; 3 not yet
const S_IDLE: usize = 6; // u8: waiting for the limit
const S_START: usize = 8; // u64 ns
const S_OFFSET: usize = 16; // u64 byte offset on the LUN
const S_SIZE: usize = 24;

// ---- a slot's guest RAM: header, response (virtio-blk: the status byte), data (on a page of its own, as O_DIRECT needs) ----
const SLOT_HDR: usize = 0;
const SLOT_RESP: usize = 64;
const SLOT_DATA: usize = 4096;

// ---- latency histogram: values in ns, exact below 1024, then 512 buckets per power of two ----
const SUB: u32 = 1024;
const HALF: u32 = 512;
const HIST_BUCKETS: u32 = SUB + 54 * HALF;

/** The bucket of a value. */
@inline function bucket(v: u64): u32 {
  if (v < <u64>SUB) return <u32>v;
  const shift = <u32>(63 - clz(v)) - 9; // v >> shift is in [512, 1024)
  return SUB + (shift - 1) * HALF + (<u32>(v >> shift) - HALF);
}

/** The middle of a bucket's range (what the caller records it as). */
export function engine_bucket_value(b: u32): f64 {
  if (b < SUB) return <f64>b;
  const shift = (b - SUB) / HALF + 1;
  const low = <u64>((b - SUB) % HALF + HALF) << shift;
  return <f64>low + <f64>((<u64>1 << shift) >> 1);
}

export function engine_job_bytes(): u32 {
  return <u32>J_SIZE;
}
export function engine_queue_bytes(): u32 {
  return <u32>Q_SIZE;
}
export function engine_slot_bytes(): u32 {
  return <u32>S_SIZE;
}
export function engine_hist_buckets(): u32 {
  return HIST_BUCKETS;
}

/** Guest RAM one slot needs for requests of `bs` bytes (header, response, data rounded to 4 KiB). */
@inline function slot_ram(bs: u32): u32 {
  return <u32>SLOT_DATA + ((bs + 4095) & ~4095);
}
export function engine_slot_ram(bs: u32): u32 {
  return slot_ram(bs);
}

/** The larger of a job's request sizes: what a slot's data buffer holds. */
@inline function slot_bs(st: usize): u32 {
  return max(load<u32>(st + J_BS), load<u32>(st + J_BS_WRITE));
}

/**
 * Sets up a job at `st` driving a device of type `device` (ENGINE_DEVICE_*): its queues' table at `qtab` (nQueues * engine_queue_bytes()), reads
 * (and trims) of `bs` bytes and writes of `bsWrite` in the region of `regionBytes` from byte
 * `region`, the verify tables (gens: u32 per block of bs, busy: u8 per block; 0 without
 * verify), and three histograms at `hist` (reads, writes, trims: engine_hist_buckets() u32
 * each), all zeroed by the caller.
 */
export function engine_init(
  st: usize, device: u32, nQueues: u32, qtab: usize, bs: u32, bsWrite: u32, blockSize: u32, mode: u32, mix: u32,
  seed: u32, region: u64, regionBytes: u64, gens: usize, busy: usize, hist: usize,
): void {
  store<u32>(st + J_DEVICE, device);
  store<u32>(st + J_QUEUES, nQueues);
  store<u32>(st + J_BS, bs);
  store<u32>(st + J_BS_WRITE, bsWrite);
  store<u32>(st + J_BLOCK_SIZE, blockSize);
  store<u32>(st + J_MODE, mode);
  store<u32>(st + J_MIX, mix);
  store<u32>(st + J_BLOCKS, <u32>(regionBytes / bs));
  store<u32>(st + J_SEED, seed != 0 ? seed : 1);
  store<u32>(st + J_GEN, 1);
  store<u32>(st + J_QTAB, <u32>qtab);
  store<u32>(st + J_GENS, <u32>gens);
  store<u32>(st + J_BUSY, <u32>busy);
  store<u32>(st + J_HIST, <u32>hist);
  store<u64>(st + J_REGION, region);
  store<u64>(st + J_REGION_BYTES, regionBytes);
  store<u64>(st + J_LIMIT, u64.MAX_VALUE);
}

/**
 * Sets up queue qi: its ring in shared-memory offsets (desc, avail, used, `num` entries), the
 * indices the guest driver left it at, the slots' guest RAM (`depth` * engine_slot_ram(bs) at
 * bufGpa / bufHva), the slot table (depth * engine_slot_bytes()), and where requests go.
 */
export function engine_init_queue(
  st: usize, qi: u32, desc: usize, avail: usize, used: usize, num: u32, depth: u32,
  bufGpa: u64, bufHva: usize, availIdx: u32, usedIdx: u32, target: u32, lun: u32, slots: usize,
): void {
  const q = queue(st, qi);
  const bs = slot_bs(st);
  store<u32>(q + Q_DESC, <u32>desc);
  store<u32>(q + Q_AVAIL, <u32>avail);
  store<u32>(q + Q_USED, <u32>used);
  store<u32>(q + Q_MASK, num - 1);
  store<u32>(q + Q_DEPTH, depth);
  store<u32>(q + Q_BUF_HVA, <u32>bufHva);
  store<u64>(q + Q_BUF_GPA, bufGpa);
  store<u32>(q + Q_AVAIL_SHADOW, availIdx);
  store<u32>(q + Q_KICKED, availIdx);
  store<u32>(q + Q_LAST_USED, usedIdx);
  store<u32>(q + Q_TAG, 1);
  store<u32>(q + Q_SLOTS, <u32>slots);
  for (let s: u32 = 0; s < depth; s++) {
    store<u8>(slots + <usize>s * S_SIZE + S_LAYOUT, 3);
    const h = bufHva + s * slot_ram(bs) + SLOT_HDR;
    memory.fill(h, 0, SLOT_DATA);
    if (load<u32>(st + J_DEVICE) == ENGINE_DEVICE_BLK) continue;
    store<u8>(h, 1);
    store<u8>(h + 1, <u8>target);
    store<u8>(h + 2, <u8>((lun >> 8) | 0x40));
    store<u8>(h + 3, <u8>lun);
  }
  // used_event far behind: no interrupts while polling.
  atomic.store<u16>(avail + 4 + 2 * num, <u16>(usedIdx - 1));
}

@inline function queue(st: usize, qi: u32): usize {
  return <usize>load<u32>(st + J_QTAB) + <usize>qi * Q_SIZE;
}

@inline function count(st: usize, c: u32, n: u64): void {
  const at = st + J_COUNTERS + 8 * <usize>c;
  store<u64>(at, load<u64>(at) + n);
}

export function engine_counter(st: usize, c: u32): f64 {
  return <f64>load<u64>(st + J_COUNTERS + 8 * <usize>c);
}

/**
 * fio's ramp_time is over: I/Os, bytes and latencies count from zero again. Errors, the first
 * one, and verify's counts stay: a failure during the ramp is a failure of the run.
 */
export function engine_reset_counts(st: usize): void {
  for (let c: u32 = 0; c < <u32>COUNTERS; c++) {
    if (c != COUNTER_ERRORS && c != COUNTER_MISMATCHES && c != COUNTER_VERIFIED) store<u64>(st + J_COUNTERS + 8 * <usize>c, 0);
  }
  memory.fill(<usize>load<u32>(st + J_HIST), 0, 3 * 4 * <usize>HIST_BUCKETS);
}

/**
 * The first failed request's fields: 0 its operation (0 read, 1 write, 2 trim), 1 the virtio-scsi
 * response, 2 the SCSI status, 3-5 sense key, ASC, ASCQ, 6 its byte offset on the LUN, 7 its
 * length; -1 when no request failed.
 */
export function engine_first_error(st: usize, field: u32): f64 {
  const e = st + J_FIRST_ERR;
  if (load<u8>(e + ERR_SET) == 0) return -1;
  if (field == 0) return <f64>load<u8>(e + ERR_OP);
  if (field == 1) return <f64>load<u8>(e + ERR_RESPONSE);
  if (field == 2) return <f64>load<u8>(e + ERR_STATUS);
  if (field == 3) return <f64>load<u8>(e + ERR_KEY);
  if (field == 4) return <f64>load<u8>(e + ERR_ASC);
  if (field == 5) return <f64>load<u8>(e + ERR_ASCQ);
  if (field == 6) return <f64>load<u64>(e + ERR_OFFSET);
  return <f64>load<u32>(e + ERR_LENGTH);
}

/** xorshift32: the job's random stream. */
@inline function rand(st: usize): u32 {
  let x = load<u32>(st + J_SEED);
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  store<u32>(st + J_SEED, x);
  return x;
}

/** Fills a block's buffer with its stamp: every word derived from (block, generation, index). */
function stamp(buf: usize, words: u32, block: u32, gen: u32): void {
  let x = (block + 1) * 0x9e3779b1 ^ gen * 0x85ebca6b;
  for (let k: u32 = 0; k < words; k++) {
    x = (x ^ (x >> 15)) * 0x2c1b3c6d + k;
    store<u32>(buf + 4 * k, x);
  }
  store<u32>(buf, block);
  store<u32>(buf + 4, gen);
}

function matches(buf: usize, words: u32, block: u32, gen: u32): bool {
  if (load<u32>(buf) != block || load<u32>(buf + 4) != gen) return false;
  let x = (block + 1) * 0x9e3779b1 ^ gen * 0x85ebca6b;
  for (let k: u32 = 0; k < words; k++) {
    x = (x ^ (x >> 15)) * 0x2c1b3c6d + k;
    if (k >= 2 && load<u32>(buf + 4 * k) != x) return false;
  }
  return true;
}

/** Writes descriptor i of the queue's table. */
@inline function set_desc(q: usize, i: u32, gpa: u64, len: u32, flags: u16, next: u16): void {
  const d = <usize>load<u32>(q + Q_DESC) + 16 * i;
  store<u64>(d, gpa);
  store<u32>(d + 8, len);
  store<u16>(d + 12, flags);
  store<u16>(d + 14, next);
}

/** The data length of an operation's requests. */
@inline function op_bytes(st: usize, op: u8): u32 {
  return op == OP_WRITE ? load<u32>(st + J_BS_WRITE) : load<u32>(st + J_BS);
}

@inline function is_blk(st: usize): bool {
  return load<u32>(st + J_DEVICE) == ENGINE_DEVICE_BLK;
}

/**
 * Lays a slot's chain out for its operation. virtio-scsi: a read is header, response, data-in;
 * a write header, data-out, response; a trim header, its UNMAP parameter list out, response.
 * virtio-blk: header, data (in or out; a trim's DISCARD segment out), status.
 */
function layout(st: usize, q: usize, slot: u32, op: u8): void {
  const d = 3 * slot;
  const g = load<u64>(q + Q_BUF_GPA) + <u64>(slot * slot_ram(slot_bs(st)));
  if (is_blk(st)) {
    set_desc(q, d, g + SLOT_HDR, VIRTIO_BLK_OUTHDR_SIZE, VRING_DESC_F_NEXT, <u16>(d + 1));
    const len = op == OP_TRIM ? VIRTIO_BLK_DWZ_SEG_SIZE : op_bytes(st, op);
    set_desc(q, d + 1, g + SLOT_DATA, len, (op == OP_READ ? VRING_DESC_F_WRITE : 0) | VRING_DESC_F_NEXT, <u16>(d + 2));
    set_desc(q, d + 2, g + SLOT_RESP, 1, VRING_DESC_F_WRITE, 0);
    return;
  }
  set_desc(q, d, g + SLOT_HDR, CMD_REQ_SIZE, VRING_DESC_F_NEXT, <u16>(d + 1));
  if (op == OP_READ) {
    set_desc(q, d + 1, g + SLOT_RESP, CMD_RESP_SIZE, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, <u16>(d + 2));
    set_desc(q, d + 2, g + SLOT_DATA, op_bytes(st, op), VRING_DESC_F_WRITE, 0);
  } else {
    set_desc(q, d + 1, g + SLOT_DATA, op == OP_TRIM ? UNMAP_LIST : op_bytes(st, op), VRING_DESC_F_NEXT, <u16>(d + 2));
    set_desc(q, d + 2, g + SLOT_RESP, CMD_RESP_SIZE, VRING_DESC_F_WRITE, 0);
  }
}

/**
 * Where in the region a new request of `bytes` goes (a multiple of `bytes`: blocks of that size
 * at random, or one after the other, from the start again at the end); u64.MAX_VALUE when the
 * phase has no more. In the fill and read-back phases (verify) blocks go in order.
 */
function next_offset(st: usize, bytes: u32): u64 {
  const blocks = load<u32>(st + J_BLOCKS);
  const phase = load<u32>(st + J_PHASE);
  if (phase != PHASE_RUN) {
    let c = load<u32>(st + J_CURSOR);
    if (phase == PHASE_READBACK) {
      const gens = <usize>load<u32>(st + J_GENS);
      while (c < blocks && load<u32>(gens + 4 * c) == 0) c++;
    }
    if (c >= blocks) return u64.MAX_VALUE;
    store<u32>(st + J_CURSOR, c + 1);
    return <u64>c * bytes;
  }
  const busy = <usize>load<u32>(st + J_BUSY);
  const regionBytes = load<u64>(st + J_REGION_BYTES);
  const sequential = (load<u32>(st + J_MODE) & MODE_SEQUENTIAL) != 0;
  // A block with a request in flight is skipped (verify: every request is one block), up to 64 tries.
  let off: u64;
  let tries = 0;
  do {
    if (sequential) {
      off = load<u64>(st + J_SEQ_OFF);
      if (off + bytes > regionBytes) off = 0;
      store<u64>(st + J_SEQ_OFF, off + bytes);
    } else {
      off = ((<u64>rand(st) << 32) | <u64>rand(st)) % (regionBytes / bytes) * bytes;
    }
  } while (busy != 0 && load<u8>(busy + <usize>(off / bytes)) != 0 && ++tries <= 64);
  return off;
}

/** The operation a new request does, as the phase and the job's mode ask. */
function next_op(st: usize): u8 {
  const mode = load<u32>(st + J_MODE);
  const phase = load<u32>(st + J_PHASE);
  if (phase == PHASE_FILL) return OP_WRITE;
  if (phase == PHASE_READBACK || (mode & MODE_ALL_READS) != 0) return OP_READ;
  if ((mode & MODE_TRIM) != 0) return OP_TRIM;
  if ((mode & MODE_MIXED) != 0) return rand(st) % 100 < load<u32>(st + J_MIX) ? OP_READ : OP_WRITE;
  return OP_WRITE;
}

/**
 * Starts a request in `slot` of queue q, as the phase asks; false when the phase has no more,
 * or when the limit on started requests is reached (the slot then waits idle).
 */
function issue(st: usize, q: usize, slot: u32): bool {
  const phase = load<u32>(st + J_PHASE);
  const s = <usize>load<u32>(q + Q_SLOTS) + <usize>slot * S_SIZE;
  if (phase == PHASE_RUN) {
    const started = load<u64>(st + J_STARTED);
    if (started >= load<u64>(st + J_LIMIT)) {
      store<u8>(s + S_IDLE, 1);
      store<u32>(st + J_IDLE, load<u32>(st + J_IDLE) + 1);
      return false;
    }
    store<u64>(st + J_STARTED, started + 1);
  }
  store<u8>(s + S_IDLE, 0);
  let op = next_op(st);
  const off = next_offset(st, op_bytes(st, op));
  if (off == u64.MAX_VALUE) return false;
  const mode = load<u32>(st + J_MODE);
  const verify = (mode & MODE_VERIFY) != 0;
  const gens = <usize>load<u32>(st + J_GENS);
  const bs = load<u32>(st + J_BS);
  const b = <u32>(off / bs);
  // Nothing to check yet: write the block first.
  if (verify && op == OP_READ && phase == PHASE_RUN && load<u32>(gens + 4 * b) == 0) op = OP_WRITE;
  const bytes = op_bytes(st, op);
  const at = load<u64>(st + J_REGION) + off;
  store<u32>(s + S_BLOCK, b);
  store<u8>(s + S_OP, op);
  store<u64>(s + S_OFFSET, at);
  const hva = <usize>load<u32>(q + Q_BUF_HVA) + slot * slot_ram(slot_bs(st));
  if (verify) {
    store<u8>(<usize>load<u32>(st + J_BUSY) + b, 1);
    if (op == OP_WRITE) {
      const gen = load<u32>(st + J_GEN);
      store<u32>(st + J_GEN, gen + 1);
      store<u32>(gens + 4 * b, gen);
      stamp(hva + SLOT_DATA, bs >> 2, b, gen);
    }
  }
  store<u64>(s + S_START, load<u64>(st + J_NOW));
  if (load<u8>(s + S_LAYOUT) != op) {
    layout(st, q, slot, op);
    store<u8>(s + S_LAYOUT, op);
  }
  if (is_blk(st)) {
    // struct virtio_blk_req: type, reserved, sector (512-byte units); a trim's one segment.
    store<u32>(hva, op == OP_READ ? VIRTIO_BLK_T_IN : op == OP_WRITE ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_DISCARD);
    store<u32>(hva + 4, 0);
    store<u64>(hva + 8, op == OP_TRIM ? 0 : at >> 9);
    if (op == OP_TRIM) {
      const seg = hva + SLOT_DATA;
      store<u64>(seg, at >> 9);
      store<u32>(seg + 8, bytes >> 9);
      store<u32>(seg + 12, 0);
    }
    store<u8>(hva + SLOT_RESP, 0xff);
  } else {
    scsi_request(st, q, hva, op, at, bytes);
  }
  const avail = <usize>load<u32>(q + Q_AVAIL);
  const shadow = load<u32>(q + Q_AVAIL_SHADOW);
  store<u16>(avail + 4 + 2 * (shadow & load<u32>(q + Q_MASK)), <u16>(3 * slot));
  store<u32>(q + Q_AVAIL_SHADOW, (shadow + 1) & 0xffff);
  return true;
}

/** Fills a slot's virtio_scsi_cmd_req: the tag and a READ(16), WRITE(16) or UNMAP of `bytes` at byte `at`. */
function scsi_request(st: usize, q: usize, hva: usize, op: u8, at: u64, bytes: u32): void {
  const blockSize = load<u32>(st + J_BLOCK_SIZE);
  const lba = at / blockSize;
  const tag = load<u32>(q + Q_TAG);
  store<u32>(q + Q_TAG, tag + 1);
  store<u32>(hva + 8, tag);
  const cdb = hva + 19;
  if (op == OP_TRIM) {
    // UNMAP: parameter list length 24; the list's header (data lengths 22 and 16), then the
    // one block descriptor: LBA, number of blocks (big-endian).
    memory.fill(cdb, 0, 16);
    store<u8>(cdb, UNMAP);
    store<u16>(cdb + 7, bswap<u16>(<u16>UNMAP_LIST));
    const list = hva + SLOT_DATA;
    memory.fill(list, 0, UNMAP_LIST);
    store<u16>(list, bswap<u16>(<u16>(UNMAP_LIST - 2)));
    store<u16>(list + 2, bswap<u16>(16));
    store<u64>(list + 8, bswap<u64>(lba));
    store<u32>(list + 16, bswap<u32>(bytes / blockSize));
  } else {
    // READ(16) / WRITE(16): opcode, LBA, transfer length (big-endian).
    store<u8>(cdb, op == OP_READ ? READ_16 : WRITE_16);
    store<u8>(cdb + 1, 0);
    store<u64>(cdb + 2, bswap<u64>(lba));
    store<u32>(cdb + 10, bswap<u32>(bytes / blockSize));
    store<u16>(cdb + 14, 0);
  }
}

/** Publishes what was submitted to queue qi; marks it for a kick if the device asked (event-idx). */
function publish(st: usize, qi: u32): void {
  const q = queue(st, qi);
  const old = load<u32>(q + Q_KICKED);
  const now = load<u32>(q + Q_AVAIL_SHADOW);
  if (old == now) return;
  const avail = <usize>load<u32>(q + Q_AVAIL);
  atomic.store<u16>(avail + 2, <u16>now);
  store<u32>(q + Q_KICKED, now);
  const used = <usize>load<u32>(q + Q_USED);
  const availEvent = <u32>atomic.load<u16>(used + 4 + 8 * (load<u32>(q + Q_MASK) + 1));
  if (vring_need_event(availEvent, now, old)) store<u32>(st + J_KICKS, load<u32>(st + J_KICKS) | (1 << qi));
}

/** Keeps the first failed request's operation, response, status, sense and place. */
function note_error(st: usize, s: usize, r: usize, op: u8): void {
  const e = st + J_FIRST_ERR;
  if (load<u8>(e + ERR_SET) != 0) return;
  store<u8>(e + ERR_SET, 1);
  store<u8>(e + ERR_OP, op);
  store<u64>(e + ERR_OFFSET, load<u64>(s + S_OFFSET));
  store<u32>(e + ERR_LENGTH, op_bytes(st, op));
  if (is_blk(st)) {
    store<u8>(e + ERR_RESPONSE, load<u8>(r));
    return;
  }
  store<u8>(e + ERR_RESPONSE, load<u8>(r + 11));
  store<u8>(e + ERR_STATUS, load<u8>(r + 10));
  // Sense (SPC-4 4.5): fixed format (0x70, 0x71) has the key in byte 2 and ASC/ASCQ in 12/13;
  // descriptor format (0x72, 0x73) in bytes 1, 2, 3. None when the sense length is 0.
  const sense = r + 12;
  const len = load<u32>(r);
  const code = load<u8>(sense) & 0x7f;
  if (len >= 14 && (code == 0x70 || code == 0x71)) {
    store<u8>(e + ERR_KEY, load<u8>(sense + 2) & 0xf);
    store<u8>(e + ERR_ASC, load<u8>(sense + 12));
    store<u8>(e + ERR_ASCQ, load<u8>(sense + 13));
  } else if (len >= 4 && (code == 0x72 || code == 0x73)) {
    store<u8>(e + ERR_KEY, load<u8>(sense + 1) & 0xf);
    store<u8>(e + ERR_ASC, load<u8>(sense + 2));
    store<u8>(e + ERR_ASCQ, load<u8>(sense + 3));
  }
}

/**
 * A request came back: checks it, counts it when it succeeded (a failed one is counted as an
 * error only, its latency and bytes left out, as fio does), and starts the next one in its slot
 * (unless stopping).
 */
function complete(st: usize, q: usize, slot: u32): void {
  const s = <usize>load<u32>(q + Q_SLOTS) + <usize>slot * S_SIZE;
  const hva = <usize>load<u32>(q + Q_BUF_HVA) + slot * slot_ram(slot_bs(st));
  const r = hva + SLOT_RESP;
  // virtio-blk: status VIRTIO_BLK_S_OK; virtio-scsi: status and response (bytes 10, 11) zero, no residual (bytes 4..7).
  const ok = is_blk(st) ? load<u8>(r) == 0 : load<u16>(r + 10) == 0 && load<u32>(r + 4) == 0;
  const op = load<u8>(s + S_OP);
  const read = op == OP_READ;
  const b = load<u32>(s + S_BLOCK);
  const phase = load<u32>(st + J_PHASE);
  const verify = (load<u32>(st + J_MODE) & MODE_VERIFY) != 0;
  if (!ok) {
    count(st, COUNTER_ERRORS, 1);
    note_error(st, s, r, op);
  } else if (phase == PHASE_RUN) {
    const lat = load<u64>(st + J_NOW) - load<u64>(s + S_START);
    const h = <usize>load<u32>(st + J_HIST) + 4 * <usize>HIST_BUCKETS * op + 4 * <usize>bucket(lat > 0 ? lat : 1);
    store<u32>(h, load<u32>(h) + 1);
    count(st, op == OP_READ ? COUNTER_READ_LAT_NS : op == OP_WRITE ? COUNTER_WRITE_LAT_NS : COUNTER_TRIM_LAT_NS, lat);
    count(st, op == OP_READ ? COUNTER_READ_IOS : op == OP_WRITE ? COUNTER_WRITE_IOS : COUNTER_TRIM_IOS, 1);
    count(st, op == OP_READ ? COUNTER_READ_BYTES : op == OP_WRITE ? COUNTER_WRITE_BYTES : COUNTER_TRIM_BYTES, op_bytes(st, op));
  }
  if (verify) {
    store<u8>(<usize>load<u32>(st + J_BUSY) + b, 0);
    // A write that failed left the block's contents unknown: nothing to check until it is written again.
    if (!ok && op == OP_WRITE) store<u32>(<usize>load<u32>(st + J_GENS) + 4 * b, 0);
    if (read && ok) {
      count(st, COUNTER_VERIFIED, 1);
      if (!matches(hva + SLOT_DATA, load<u32>(st + J_BS) >> 2, b, load<u32>(<usize>load<u32>(st + J_GENS) + 4 * b))) count(st, COUNTER_MISMATCHES, 1);
    }
  }
  if (load<u32>(st + J_STOPPING) == 0) issue(st, q, slot);
}

/** Reaps queue q's used ring; returns how many came back. */
function reap(st: usize, q: usize): u32 {
  const used = <usize>load<u32>(q + Q_USED);
  const end = <u32>atomic.load<u16>(used + 2);
  let last = load<u32>(q + Q_LAST_USED);
  const mask = load<u32>(q + Q_MASK);
  const depth = load<u32>(q + Q_DEPTH);
  let n: u32 = 0;
  while (last != end) {
    const id = load<u32>(used + 4 + 8 * (last & mask));
    last = (last + 1) & 0xffff;
    n++;
    const slot = id / 3;
    if (slot >= depth || id % 3 != 0) {
      count(st, COUNTER_ERRORS, 1); // not a chain this job posted
      continue;
    }
    complete(st, q, slot);
  }
  store<u32>(q + Q_LAST_USED, last);
  return n;
}

/**
 * Begins a phase (0 run, 1 fill the region with writes, 2 read back what was written) at time
 * nowMs: every slot of every queue gets a request, and they are published. Returns the queues
 * to kick as a bit mask.
 */
export function engine_begin(st: usize, phase: u32, nowMs: f64): u32 {
  store<u32>(st + J_PHASE, phase);
  store<u32>(st + J_IDLE, 0);
  store<u64>(st + J_STARTED, 0);
  store<u32>(st + J_CURSOR, 0);
  store<u32>(st + J_STOPPING, 0);
  store<u64>(st + J_NOW, <u64>(nowMs * 1e6));
  store<u32>(st + J_KICKS, 0);
  const n = load<u32>(st + J_QUEUES);
  for (let qi: u32 = 0; qi < n; qi++) {
    const q = queue(st, qi);
    const depth = load<u32>(q + Q_DEPTH);
    // A fill or read-back has no more blocks; a limited run leaves the slot idle and goes on.
    for (let s: u32 = 0; s < depth; s++) if (!issue(st, q, s) && phase != PHASE_RUN) break;
    publish(st, qi);
  }
  return load<u32>(st + J_KICKS);
}

/** Whether queue q's device has put used entries there that were not reaped yet. */
@inline function has_used(q: usize): bool {
  return <u32>atomic.load<u16>(<usize>load<u32>(q + Q_USED) + 2) != load<u32>(q + Q_LAST_USED);
}

/**
 * Whether a pass would reap anything: the caller reads its clock and calls engine_pass only
 * then, so that looking at idle queues costs a few loads.
 */
export function engine_ready(st: usize): bool {
  const nq = load<u32>(st + J_QUEUES);
  for (let qi: u32 = 0; qi < nq; qi++) if (has_used(queue(st, qi))) return true;
  return false;
}

/**
 * How many requests the run phase may have started by now (fio's rate_iops: the caller raises
 * it with time); unlimited until set. Slots left idle by the limit start on the next pass.
 */
export function engine_set_limit(st: usize, limit: f64): void {
  store<u64>(st + J_LIMIT, <u64>limit);
}

/** Slots waiting for the limit to allow them a request. */
export function engine_idle(st: usize): u32 {
  return load<u32>(st + J_IDLE);
}

/** Starts requests in idle slots while the limit allows (not when stopping). */
function refill(st: usize): void {
  const nq = load<u32>(st + J_QUEUES);
  for (let qi: u32 = 0; qi < nq && load<u32>(st + J_IDLE) != 0; qi++) {
    const q = queue(st, qi);
    const slots = <usize>load<u32>(q + Q_SLOTS);
    const depth = load<u32>(q + Q_DEPTH);
    for (let s: u32 = 0; s < depth; s++) {
      const at = slots + <usize>s * S_SIZE + S_IDLE;
      if (load<u8>(at) == 0) continue;
      if (load<u64>(st + J_STARTED) >= load<u64>(st + J_LIMIT)) return;
      store<u8>(at, 0);
      store<u32>(st + J_IDLE, load<u32>(st + J_IDLE) - 1);
      issue(st, q, s);
    }
  }
}

/**
 * One pass at time nowMs: reaps every queue (starting a new request per completion unless
 * stopping or limited), starts idle slots the limit now allows, then publishes. Returns how
 * many came back; engine_kicks() the queues to kick.
 */
export function engine_pass(st: usize, nowMs: f64): u32 {
  store<u64>(st + J_NOW, <u64>(nowMs * 1e6));
  store<u32>(st + J_KICKS, 0);
  const nq = load<u32>(st + J_QUEUES);
  let n: u32 = 0;
  for (let qi: u32 = 0; qi < nq; qi++) n += reap(st, queue(st, qi));
  if (load<u32>(st + J_IDLE) != 0 && load<u32>(st + J_STOPPING) == 0) refill(st);
  for (let qi: u32 = 0; qi < nq; qi++) publish(st, qi);
  return n;
}

export function engine_kicks(st: usize): u32 {
  return load<u32>(st + J_KICKS);
}

/** No new requests from now on; those in flight still come back. */
export function engine_stop(st: usize): void {
  store<u32>(st + J_STOPPING, 1);
}

/** Requests in flight on all queues. */
export function engine_outstanding(st: usize): u32 {
  const nq = load<u32>(st + J_QUEUES);
  let n: u32 = 0;
  for (let qi: u32 = 0; qi < nq; qi++) {
    const q = queue(st, qi);
    n += (load<u32>(q + Q_AVAIL_SHADOW) - load<u32>(q + Q_LAST_USED)) & 0xffff;
  }
  return n;
}

/**
 * Before sleeping on queue qi's interrupt: asks for one at the next used entry (used_event)
 * and returns whether one is there already (then do not sleep).
 */
export function engine_arm(st: usize, qi: u32): bool {
  const q = queue(st, qi);
  const last = load<u32>(q + Q_LAST_USED);
  const avail = <usize>load<u32>(q + Q_AVAIL);
  const usedEvent = avail + 4 + 2 * (load<u32>(q + Q_MASK) + 1);
  atomic.store<u16>(usedEvent, <u16>last);
  return has_used(q);
}

/** After the sleep: used_event far behind again (no interrupts while polling). */
export function engine_disarm(st: usize, qi: u32): void {
  const q = queue(st, qi);
  const avail = <usize>load<u32>(q + Q_AVAIL);
  atomic.store<u16>(avail + 4 + 2 * (load<u32>(q + Q_MASK) + 1), <u16>(load<u32>(q + Q_LAST_USED) - 1));
}
