// A guest submitter thread of the benchmark (one fio job): drives its request queues with its
// load engine (WebAssembly by default, or the TypeScript guest driver with --engine ts) in a
// closed loop, keeps `iodepth` I/Os in flight, and with --verify stamps every written block and
// checks every block read. It polls while completions keep coming (AdaptivePoll within
// --guest-poll) and sleeps on its interrupt otherwise.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import hdr from "hdr-histogram-js";
import { threadCpuMs } from "../src/worker/thread-cpu.js";
import { AdaptivePoll } from "../src/worker/adaptive-poll.js";
import { JobInterrupts } from "./interrupts.js";
import { PHASE_FILL, PHASE_READBACK, PHASE_RUN, type EngineCounts, type GuestEngine, type JobInit } from "./guest-engine.js";
import { TsGuestEngine } from "./ts-engine.js";
import { WasmGuestEngine } from "./wasm-engine.js";
import { TIMELINE_STRIDE, type JobResult } from "./job-result.js";

const init = workerData as JobInit;
const o = init.opts;
const stats = new Float64Array(init.stats, init.index * 4 * 8, 4);
const control = new Int32Array(init.control);
const engine: GuestEngine = o.engine === "wasm" ? new WasmGuestEngine(init) : new TsGuestEngine(init);
const allReads = o.rw === "read" || o.rw === "randread";

/** The window of the timeline: --log_avg_msec for logs and the plot, else fio's 500 ms of bw and iops samples. */
const sampleMs = o.iopsLog || o.bwLog || o.latLog || o.plot ? o.logAvgMsec : 500;
const timeline: number[] = [];
/** The timed run's start, and the counters at the last window's end. */
let runStart = -1;
let nextSample = Infinity;
let last = [0, 0, 0, 0, 0, 0];

/** Closes the window that ends at `now`: a new one on the timeline, or with `merge` part of the last one. */
function closeWindow(c: EngineCounts, now: number, merge: boolean): void {
  const cur = [c.read.ios, c.read.bytes, c.read.latNs, c.write.ios, c.write.bytes, c.write.latNs];
  const row = [now - runStart, ...cur.map((v, k) => v - last[k])];
  last = cur;
  if (!merge) {
    timeline.push(...row);
    return;
  }
  const at = timeline.length - TIMELINE_STRIDE;
  timeline[at] = row[0];
  for (let k = 1; k < TIMELINE_STRIDE; k++) timeline[at + k] += row[k];
}

/** Publishes the live counters the main thread's progress line reads, and closes a log window when one is due. */
function flushStats(now = performance.now()): void {
  const c = engine.counts();
  stats[0] = c.read.ios;
  stats[1] = c.read.bytes;
  stats[2] = c.write.ios;
  stats[3] = c.write.bytes;
  if (now < nextSample) return;
  closeWindow(c, now, false);
  nextSample += sampleMs;
}

/** How long this job polls with nothing reaped before sleeping on the interrupt (adapted within --guest-poll). */
const poll = new AdaptivePoll(o.guestPollUs);
/** Any of the job's queues interrupting wakes it. */
const interrupts = new JobInterrupts(init.queues.map((q) => q.ring.call));

/**
 * Passes until `done()` says so (asked every 256 passes and whenever a pass finds nothing):
 * polls while idle for the adaptive window, then sleeps on the interrupt.
 */
function runLoop(done: () => boolean): void {
  let iter = 0;
  let idleSince = -1;
  for (;;) {
    const now = performance.now();
    const n = engine.pass(now);
    if ((++iter & 255) === 0 || now >= nextSample) {
      flushStats(now);
      if (done()) return;
    }
    if (n > 0) {
      if (idleSince >= 0) poll.waited((now - idleSince) * 1000, false, o.guestPollUs);
      idleSince = -1;
      continue;
    }
    if (done()) return;
    if ((iter & 63) !== 0 && poll.windowUs > 0) continue;
    const t = performance.now();
    if (idleSince < 0) idleSince = t;
    if (t - idleSince < poll.windowUs / 1000) continue;
    interrupts.sleep(engine, 1);
    poll.waited((performance.now() - idleSince) * 1000, true, o.guestPollUs);
    idleSince = -1;
  }
}

/** A fill or read-back phase ends when its last request is back. */
const drained = () => engine.outstanding === 0;

// --verify with reads only: write the region once first, so that every read has something to check.
if (o.verify && allReads) {
  engine.begin(PHASE_FILL, performance.now());
  runLoop(drained);
}

parentPort!.postMessage({ ready: true });
while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 100);

const t0 = performance.now();
const cpu0 = threadCpuMs();
const limitBytes = o.runtimeMs > 0 ? Infinity : init.regionBytes;
runStart = t0;
nextSample = t0 + sampleMs;
engine.begin(PHASE_RUN, t0);
let stopping = false;
runLoop(() => {
  if (!stopping) {
    const c = engine.counts();
    if (Atomics.load(control, 1) !== 0 || (o.runtimeMs > 0 && performance.now() - t0 >= o.runtimeMs) || c.read.bytes + c.write.bytes >= limitBytes) {
      engine.stop();
      stopping = true;
    }
  }
  return stopping && engine.outstanding === 0;
});
const elapsedMs = performance.now() - t0;
// The last, partial window; one shorter than half a window (the drain at the end) joins the one before.
const lastEnd = timeline.length ? timeline[timeline.length - TIMELINE_STRIDE] : -Infinity;
closeWindow(engine.counts(), t0 + elapsedMs, elapsedMs - lastEnd < sampleMs / 2);
nextSample = Infinity;

// --verify after writes: read back every block written and check it.
if (o.verify && !allReads) {
  engine.begin(PHASE_READBACK, performance.now());
  runLoop(drained);
}

flushStats();
interrupts.close();
const cpu1 = threadCpuMs();
const c = engine.counts();
const [hr, hw] = engine.histograms();
const result: JobResult = {
  index: init.index,
  read: { ios: c.read.ios, bytes: c.read.bytes, histogram: hdr.encodeIntoCompressedBase64(hr) },
  write: { ios: c.write.ios, bytes: c.write.bytes, histogram: hdr.encodeIntoCompressedBase64(hw) },
  errors: c.errors,
  verifyMismatches: c.mismatches,
  verifiedBlocks: c.verified,
  elapsedMs,
  cpu: cpu0 && cpu1 && { user: cpu1.user - cpu0.user, system: cpu1.system - cpu0.system },
  kicks: c.kicks,
  timeline,
};
parentPort!.postMessage(result);
