// Where a run's jobs do their I/O: the LUN they share (its backstore, its size, read-only when
// no job writes), and each job's region of it, as fio sizes a job's region by its file:
// --offset, then --size, never past the end. What the LUN cannot hold is an error before any
// I/O. (A file that is not there yet is laid out by file-lun.ts, in Node.)
import type { LunConfig } from "../src/target/tpg.js";
import type { Amount, FioOptions } from "./options.js";
import { rwPattern } from "./guest-engine.js";

/** A run cannot start: what is wrong, in one line. */
export class RunError extends Error {}

/** A RAM or null LUN's size when no job gives one in bytes (fio's file size has no default; a RAM disk needs one). */
const DEFAULT_LUN_BYTES = 256 << 20;

/** The part of the LUN a job addresses. */
export interface Region {
  offset: number;
  bytes: number;
}

export const fmtMiB = (n: number) => (n % 2 ** 20 === 0 ? `${n / 2 ** 20}MiB` : n % 1024 === 0 ? `${n / 1024}KiB` : `${n}B`);

/** A job writes (a read-only job with --verify writes its region first). */
const writes = (o: FioOptions) => !rwPattern(o.rw).allReads || o.verify;

/** The bytes a job needs from the LUN's start when they are given in bytes: --offset + --size (the default size where none). */
export function bytesNeeded(o: FioOptions, dflt: number): number {
  const off = "bytes" in o.offset ? o.offset.bytes : 0;
  return off + (o.size && "bytes" in o.size ? o.size.bytes : dflt);
}

/**
 * The LUN a run's jobs share: a RAM or null disk holding the farthest byte any job addresses;
 * any other backstore as the jobs name it, read-only when no job writes.
 */
export function lunFor(jobs: FioOptions[]): { lun: LunConfig; laidOut?: string } {
  const o = jobs[0];
  const readOnly = !jobs.some(writes);
  const common = { blockSize: o.blockSize, readOnly, ...(o.ioThreads !== undefined ? { ioThreads: o.ioThreads } : {}) };
  const b = o.backstore;
  if (b.backstore === "ram" || b.backstore === "null") {
    return { lun: { ...b, ...common, readOnly: false, size: Math.max(...jobs.map((j) => bytesNeeded(j, DEFAULT_LUN_BYTES))) } as LunConfig };
  }
  // An OPFS file is made (or grown) at the size the jobs give in bytes, as a file is laid out.
  const sized = jobs.every((j) => j.size && "bytes" in j.size && "bytes" in j.offset);
  const size = b.backstore === "opfs" && sized ? { size: Math.max(...jobs.map((j) => bytesNeeded(j, 0))) } : {};
  return { lun: { ...b, ...common, ...size, ...(o.direct ? { direct: true } : {}) } as LunConfig };
}

/** The bytes an amount stands for on a LUN of `capacity` bytes, whole blocks of `blockSize`. */
function amountBytes(a: Amount, capacity: number, blockSize: number): number {
  return "bytes" in a ? a.bytes : Math.floor((capacity * a.percent) / 100 / blockSize) * blockSize;
}

/** The region of the LUN (capacity bytes) a job addresses: from --offset, --size of it, or to the end. */
export function regionOf(o: FioOptions, capacity: number): Region {
  const offset = amountBytes(o.offset, capacity, o.blockSize);
  const what = `job ${o.name}`;
  if (offset >= capacity) throw new RunError(`${what}: --offset ${fmtMiB(offset)} is not inside the ${fmtMiB(capacity)} LUN`);
  const room = capacity - offset;
  let bytes = o.size ? amountBytes(o.size, capacity, o.blockSize) : room;
  if (o.size && "bytes" in o.size && bytes > room)
    throw new RunError(
      `${what}: --size ${fmtMiB(bytes)}${offset ? ` at offset ${fmtMiB(offset)}` : ""} is larger than the LUN (${fmtMiB(capacity)}${offset ? `, ${fmtMiB(room)} from the offset` : ""})`,
    );
  bytes = Math.min(bytes, room);
  const unit = Math.max(o.bs, o.bsWrite);
  bytes -= bytes % o.blockSize;
  if (bytes < unit) throw new RunError(`${what}: its region (${fmtMiB(bytes)}) is smaller than one I/O (${fmtMiB(unit)})`);
  return { offset, bytes };
}

/** How the header line says a region: its size, where it starts when not at 0, and the LUN's size. */
export function fmtRegion(r: Region, capacity: number): string {
  return r.offset === 0 && r.bytes === capacity
    ? `size=${fmtMiB(r.bytes)} (the whole LUN)`
    : `size=${fmtMiB(r.bytes)}${r.offset ? ` at offset ${fmtMiB(r.offset)}` : ""} of the ${fmtMiB(capacity)} LUN`;
}
