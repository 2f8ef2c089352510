// What a guest job's load engine does, whichever runs it: WebAssembly (wasm-engine.ts, the
// default) or the library's TypeScript guest driver (ts-engine.ts). The job thread (job.ts)
// drives either with one pass() per batch and sleeps on its interrupt when idle.
import type { Histogram } from "hdr-histogram-js";
import type { ReleasedQueue } from "../src/guest/polled-queue.js";
import type { FioOptions } from "./options.js";
import type { Armable } from "./interrupts.js";

/** What the main thread gives a job. */
export interface JobInit {
  index: number;
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
  /** Live counters [readIos, readBytes, writeIos, writeBytes] per job, and the control words. */
  stats: SharedArrayBuffer;
  control: SharedArrayBuffer; // Int32 [0]: go, [1]: stop
}

/** What a guest thread starts with: its jobs, and the CPUs it runs on (undefined: not pinned). */
export interface GuestThreadInit {
  jobs: JobInit[];
  cpus: number[] | undefined;
}

/** How a job's --rw (fio's rw) picks requests: blocks in order or at random, reads and writes mixed, reads only. */
export function rwPattern(rw: FioOptions["rw"]): { sequential: boolean; mixed: boolean; allReads: boolean } {
  return {
    sequential: rw === "read" || rw === "write" || rw === "rw",
    mixed: rw === "randrw" || rw === "rw",
    allReads: rw === "read" || rw === "randread",
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
  /** Requests answered with anything but GOOD and no residual. */
  errors: number;
  verified: number;
  mismatches: number;
  kicks: number;
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
  readonly outstanding: number;
  counts(): EngineCounts;
  /** Latencies of the timed run in ns: reads, writes. */
  histograms(): [Histogram, Histogram];
}
