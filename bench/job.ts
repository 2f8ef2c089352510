// A guest submitter thread of the benchmark (one fio job): drives its request queues with
// PolledScsiQueue in a closed loop, keeps `iodepth` I/Os in flight, records latencies in HDR
// histograms, and with --verify stamps every written block and checks every block read.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import hdr from "hdr-histogram-js";
import { PolledScsiQueue, type ReleasedQueue } from "../src/guest/polled-queue.js";
import { threadCpuMs } from "../src/worker/thread-cpu.js";
import { AdaptivePoll } from "../src/worker/adaptive-poll.js";
import type { FioOptions } from "./options.js";

/** What the main thread gives a job. */
export interface JobInit {
  index: number;
  buffer: SharedArrayBuffer;
  queues: { ring: ReleasedQueue; depth: number; bufferGpa: number; bufferHva: number }[];
  opts: FioOptions;
  target: number;
  /** The byte range of the LUN this job addresses. */
  regionStart: number;
  regionBytes: number;
  /** Live counters [readIos, readBytes, writeIos, writeBytes] per job, and the control words. */
  stats: SharedArrayBuffer;
  control: SharedArrayBuffer; // Int32 [0]: go, [1]: stop
}

export interface DirResult {
  ios: number;
  bytes: number;
  histogram: string;
}

export interface JobResult {
  index: number;
  read: DirResult;
  write: DirResult;
  errors: number;
  verifyMismatches: number;
  verifiedBlocks: number;
  elapsedMs: number;
  cpu: { user: number; system: number } | undefined;
  kicks: number;
}

const init = workerData as JobInit;
const o = init.opts;
const stats = new Float64Array(init.stats, init.index * 4 * 8, 4);
const control = new Int32Array(init.control);
const histograms = [hdr.build({ numberOfSignificantValueDigits: 3 }), hdr.build({ numberOfSignificantValueDigits: 3 })];
const ios = [0, 0];
const bytes = [0, 0];
let errors = 0;
let mismatches = 0;
let verified = 0;

const queues = init.queues.map(
  (q) =>
    new PolledScsiQueue(init.buffer, q.ring, {
      target: init.target,
      lun: 0,
      depth: q.depth,
      bytes: o.bs,
      blockSize: o.blockSize,
      bufferGpa: q.bufferGpa,
      bufferHva: q.bufferHva,
    }),
);
const blocks = Math.floor(init.regionBytes / o.bs);
const sequential = o.rw === "read" || o.rw === "write" || o.rw === "rw";
const mixed = o.rw === "randrw" || o.rw === "rw";
const allReads = o.rw === "read" || o.rw === "randread";

// xorshift32: the job's random stream.
let seed = (0x9e3779b9 ^ (init.index * 0x85ebca6b)) >>> 0 || 1;
const rand = () => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>>= 0);
};
let seqNext = 0;

// --verify: the generation last written to each block (0: never), and blocks in flight.
const gens = o.verify ? new Uint32Array(blocks) : undefined;
const busy = o.verify ? new Uint8Array(blocks) : undefined;
let genCounter = 1;

/** Fills buf with the block's stamp: every word derived from (offset, generation, index). */
function stamp(buf: Uint8Array, block: number, gen: number): void {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  let x = (Math.imul(block + 1, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) >>> 0;
  for (let k = 0; k < w.length; k++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + k) >>> 0;
    w[k] = x;
  }
  w[0] = block;
  w[1] = gen;
}

function matches(buf: Uint8Array, block: number, gen: number): boolean {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  if (w[0] !== block || w[1] !== gen) return false;
  let x = (Math.imul(block + 1, 0x9e3779b1) ^ Math.imul(gen, 0x85ebca6b)) >>> 0;
  for (let k = 0; k < w.length; k++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + k) >>> 0;
    if (k >= 2 && w[k] !== x) return false;
  }
  return true;
}

function pickBlock(): number {
  for (let tries = 0; ; tries++) {
    const b = sequential ? seqNext++ % blocks : rand() % blocks;
    if (!busy || !busy[b] || tries > 64) return b;
  }
}

// Per queue and slot: what is in flight.
const slotBlock = queues.map((q, i) => new Int32Array(init.queues[i].depth));
const slotRead = queues.map((q, i) => new Uint8Array(init.queues[i].depth));
const slotStart = queues.map((q, i) => new Float64Array(init.queues[i].depth));

function issue(qi: number, slot: number, forceRead?: boolean, block?: number, now = performance.now()): void {
  const q = queues[qi];
  const b = block ?? pickBlock();
  let read = forceRead ?? (allReads ? true : mixed ? rand() % 100 < o.rwmixread : false);
  if (gens && read && gens[b] === 0 && forceRead === undefined) read = false; // nothing to check yet: write it first
  slotBlock[qi][slot] = b;
  slotRead[qi][slot] = read ? 1 : 0;
  if (busy) busy[b] = 1;
  if (gens && !read) {
    gens[b] = genCounter++;
    stamp(q.data(slot), b, gens[b]);
  }
  slotStart[qi][slot] = now;
  q.submit(slot, read, init.regionStart + b * o.bs);
}

let stopping = false;
let completedSinceUpdate = 0;

/** The time of the current reaping pass: completions found in one pass share it. */
let passNow = 0;

function complete(qi: number, slot: number, ok: boolean): void {
  const now = passNow;
  const d = slotRead[qi][slot];
  const b = slotBlock[qi][slot];
  histograms[d ? 0 : 1].recordValue(Math.max(1, Math.round((now - slotStart[qi][slot]) * 1e6)));
  ios[d ? 0 : 1]++;
  bytes[d ? 0 : 1] += o.bs;
  if (!ok) errors++;
  if (busy) busy[b] = 0;
  if (gens && d) {
    verified++;
    if (!matches(queues[qi].data(slot), b, gens[b])) mismatches++;
  }
  if (++completedSinceUpdate >= 256) flushStats();
  if (!stopping) issue(qi, slot, undefined, undefined, now);
}

function flushStats(): void {
  stats[0] = ios[0];
  stats[1] = bytes[0];
  stats[2] = ios[1];
  stats[3] = bytes[1];
  completedSinceUpdate = 0;
}

const doneFns = queues.map((_, qi) => (slot: number, ok: boolean) => complete(qi, slot, ok));

function allIdle(): boolean {
  for (const q of queues) if (q.outstanding !== 0) return false;
  return true;
}

/** Calls f for every slot of every queue: how a phase starts with all slots in flight. */
function forEachSlot(f: (qi: number, slot: number) => void): void {
  queues.forEach((_, qi) => {
    for (let s = 0; s < init.queues[qi].depth; s++) f(qi, s);
  });
}

/** Reaps with `fns` (which may submit more) until nothing is in flight; sleeps when nothing came back. */
function drainAll(fns: ((slot: number, ok: boolean) => void)[]): void {
  for (;;) {
    let n = 0;
    for (let qi = 0; qi < queues.length; qi++) n += queues[qi].reap(fns[qi]);
    for (const q of queues) q.publish();
    if (n === 0 && allIdle()) return;
    if (n === 0) queues[0].wait(1);
  }
}


/** How long this job polls with nothing reaped before sleeping on the interrupt (adapted within --guest-poll). */
const poll = new AdaptivePoll(o.guestPollUs);

/** Reaps and publishes until `until` says so; polls, and sleeps on interrupts when idle for a while. */
function runLoop(until: () => boolean): void {
  let iter = 0;
  let idleSince = -1;
  for (;;) {
    let n = 0;
    passNow = performance.now();
    for (let qi = 0; qi < queues.length; qi++) n += queues[qi].reap(doneFns[qi]);
    for (let qi = 0; qi < queues.length; qi++) queues[qi].publish();
    if ((++iter & 255) === 0 && until()) return;
    if (n > 0) {
      if (idleSince >= 0) poll.waited((passNow - idleSince) * 1000, false, o.guestPollUs);
      idleSince = -1;
      continue;
    }
    if ((iter & 63) !== 0 && poll.windowUs > 0) continue;
    if (stopping && allIdle()) return;
    const now = performance.now();
    if (idleSince < 0) idleSince = now;
    if (now - idleSince < poll.windowUs / 1000) continue;
    queues[0].wait(1);
    poll.waited((performance.now() - idleSince) * 1000, true, o.guestPollUs);
    idleSince = -1;
  }
}

// --verify with reads only: write the region once first, so that every read has something to check.
if (gens && allReads) {
  let next = 0;
  const fill = (qi: number, slot: number) => {
    if (next < blocks) issue(qi, slot, false, next++);
  };
  forEachSlot(fill);
  drainAll(
    queues.map((_, qi) => (slot: number) => {
      busy![slotBlock[qi][slot]] = 0;
      fill(qi, slot);
    }),
  );
}

parentPort!.postMessage({ ready: true });
while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 100);

const t0 = performance.now();
const cpu0 = threadCpuMs();
const limitBytes = o.runtimeMs > 0 ? Infinity : init.regionBytes;
forEachSlot((qi, s) => issue(qi, s));
for (const q of queues) q.publish();
runLoop(() => {
  if (Atomics.load(control, 1) !== 0 || (o.runtimeMs > 0 && performance.now() - t0 >= o.runtimeMs) || bytes[0] + bytes[1] >= limitBytes) {
    stopping = true;
  }
  return stopping && queues.every((q) => q.outstanding === 0);
});
stopping = true;
runLoop(() => queues.every((q) => q.outstanding === 0));
const elapsedMs = performance.now() - t0;

// --verify after writes: read back every block written and check it.
if (gens && !allReads) {
  let next = 0;
  const readBack = (qi: number, slot: number) => {
    while (next < blocks && gens[next] === 0) next++;
    if (next < blocks) issue(qi, slot, true, next++);
  };
  stopping = true;
  forEachSlot(readBack);
  const fns = queues.map((_, qi) => (slot: number, ok: boolean) => {
    const b = slotBlock[qi][slot];
    verified++;
    if (!ok) errors++;
    if (!matches(queues[qi].data(slot), b, gens[b])) mismatches++;
    readBack(qi, slot);
  });
  drainAll(fns);
}

flushStats();
const cpu1 = threadCpuMs();
const result: JobResult = {
  index: init.index,
  read: { ios: ios[0], bytes: bytes[0], histogram: hdr.encodeIntoCompressedBase64(histograms[0]) },
  write: { ios: ios[1], bytes: bytes[1], histogram: hdr.encodeIntoCompressedBase64(histograms[1]) },
  errors,
  verifyMismatches: mismatches,
  verifiedBlocks: verified,
  elapsedMs,
  cpu: cpu0 && cpu1 && { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system },
  kicks: queues.reduce((s, q) => s + q.kicks, 0),
};
parentPort!.postMessage(result);
