// What a guest job's load engine does, whichever runs it: WebAssembly (wasm-engine.ts, the
// default) or the library's TypeScript guest driver (ts-engine.ts). The job thread (job.ts)
// drives either with one pass() per batch and sleeps on its interrupt when idle.
import type { Histogram } from "hdr-histogram-js";
import type { ReleasedQueue } from "../src/guest/polled-queue.js";
import type { FioOptions } from "./options.js";
import type { Armable } from "./interrupts.js";

/** What the main thread gives a job. */
export interface JobInit {
  /** The clone's number in the run, and its job's (the run's options list). */
  index: number;
  job: number;
  buffer: SharedArrayBuffer;
  memory: WebAssembly.Memory;
  queues: { ring: ReleasedQueue; depth: number; bufferGpa: number; bufferHva: number }[];
  /** Guest RAM for the WebAssembly engine's state (engineAreaBytes()), at this shared-memory offset. */
  engineArea: number;
  opts: FioOptions;
  target: number;
  /** The byte range of the LUN this job addresses. */
  regionStart: number;
  regionBytes: number;
  /** --plot was asked for: the timeline's windows are --log_avg_msec long. */
  plot: boolean;
  /** Live counters [readIos, readBytes, writeIos, writeBytes] per job, and the control words. */
  stats: SharedArrayBuffer;
  control: SharedArrayBuffer; // Int32 [0]: go, [1]: stop
}

/** What a guest thread starts with: its jobs, and the CPUs it runs on (undefined: not pinned). */
export interface GuestThreadInit {
  jobs: JobInit[];
  cpus: number[] | undefined;
}

/** How a job's --rw (fio's rw) picks requests: blocks in order or at random, reads and writes mixed, reads only, trims only. */
export function rwPattern(rw: FioOptions["rw"]): { sequential: boolean; mixed: boolean; allReads: boolean; trims: boolean } {
  return {
    sequential: rw === "read" || rw === "write" || rw === "rw" || rw === "trim",
    mixed: rw === "randrw" || rw === "rw",
    allReads: rw === "read" || rw === "randread",
    trims: rw === "trim" || rw === "randtrim",
  };
}

/** One step of xorshift32 (Marsaglia's 13, 17, 5): the next value of a random stream, as an unsigned 32-bit number. */
export function xorshift32(x: number): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** Job `index`'s random seed (where its xorshift32 stream starts; never 0). */
export const jobSeed = (index: number): number => (0x9e3779b9 ^ Math.imul(index, 0x85ebca6b)) >>> 0 || 1;

/** What an engine is doing: the timed run; writing the region first (--verify on reads); reading back what was written. */
import { PHASE_FILL, PHASE_READBACK, PHASE_RUN } from "./engine-abi.generated.js";
export { PHASE_FILL, PHASE_READBACK, PHASE_RUN };
export type Phase = typeof PHASE_RUN | typeof PHASE_FILL | typeof PHASE_READBACK;

/** Per direction of the timed run: I/Os, bytes, the sum of their latencies (ns). */
interface DirCounts {
  ios: number;
  bytes: number;
  latNs: number;
}

export interface EngineCounts {
  read: DirCounts;
  write: DirCounts;
  trim: DirCounts;
  /** Requests answered with anything but GOOD and no residual. */
  errors: number;
  verified: number;
  mismatches: number;
  kicks: number;
}

/** The first request that failed: what it was, and how the device answered it. */
export interface FirstError {
  op: "read" | "write" | "trim";
  /** virtio-scsi response (0: VIRTIO_SCSI_S_OK), SCSI status, and sense (zeroes when none). */
  response: number;
  status: number;
  senseKey: number;
  asc: number;
  ascq: number;
  /** Its byte offset on the LUN and length. */
  offset: number;
  length: number;
}

export interface GuestEngine extends Armable {
  /** Starts a phase at time `now` (ms) with a request in every slot, published and kicked. */
  begin(phase: Phase, now: number): void;
  /**
   * Reaps every queue (a new request per completion unless stopping, or the phase is done),
   * publishes, kicks; returns how many came back. Reads the clock (the completions' time) only
   * when something came back: an idle pass is a few loads.
   */
  pass(): number;
  /** No new requests; those in flight still come back. */
  stop(): void;
  /** How many requests the run may have started by now (fio's rate_iops); slots wait idle beyond it. */
  limit(started: number): void;
  /** Slots waiting for the limit. */
  readonly idle: number;
  readonly outstanding: number;
  counts(): EngineCounts;
  /** fio's ramp_time is over: counts and latencies from zero (errors stay). */
  resetCounts(): void;
  firstError(): FirstError | undefined;
  /** Latencies of the timed run in ns: reads, writes, trims. */
  histograms(): [Histogram, Histogram, Histogram];
}
