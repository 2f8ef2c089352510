// A guest thread of the benchmark (a vCPU of the guest): runs the fio jobs placed on it (one
// each unless --guest-threads says fewer threads than jobs). Each job drives its request queues
// with its load engine (WebAssembly by default, or the TypeScript guest driver with --engine ts)
// in a closed loop, keeps `iodepth` I/Os in flight, and with --verify stamps every written
// block and checks every block read. The thread polls while completions keep coming
// (AdaptivePoll within --guest-poll) and sleeps until any of its queues interrupts otherwise.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import hdr from "hdr-histogram-js";
import { threadCpuMs } from "../src/worker/thread-cpu.js";
import { AdaptivePoll } from "../src/worker/adaptive-poll.js";
import { pinThread } from "../src/sys/affinity.js";
import { JobInterrupts } from "./interrupts.js";
import { PHASE_FILL, PHASE_READBACK, PHASE_RUN, type GuestEngine, type GuestThreadInit, type JobInit, type Phase, rwPattern } from "./guest-engine.js";
import { TsGuestEngine } from "./ts-engine.js";
import { WasmGuestEngine } from "./wasm-engine.js";
import { TIMELINE_STRIDE, type JobResult } from "./job-result.js";

const { jobs: inits, cpus } = workerData as GuestThreadInit;
if (cpus) pinThread(cpus);
const o = inits[0].opts;
const control = new Int32Array(inits[0].control);
const { allReads } = rwPattern(o.rw);

/** The window of the timeline: --log_avg_msec for logs and the plot, else fio's 500 ms of bw and iops samples. */
const sampleMs = o.iopsLog || o.bwLog || o.latLog || o.plot ? o.logAvgMsec : 500;
/** The timed run's start, and the end of the current log window. */
let runStart = -1;
let nextSample = Infinity;

/** One fio job on this thread: its engine, live counters and timeline. */
class Job {
  readonly engine: GuestEngine;
  private readonly stats: Float64Array;
  readonly timeline: number[] = [];
  /** The counters at the last window's end. */
  private last = [0, 0, 0, 0, 0, 0];
  /** The job stopped starting requests (runtime over, its bytes done, or told to stop). */
  stopping = false;

  constructor(readonly init: JobInit) {
    this.engine = o.engine === "wasm" ? new WasmGuestEngine(init) : new TsGuestEngine(init);
    this.stats = new Float64Array(init.stats, init.index * 4 * 8, 4);
  }

  /** Closes the window that ends at `now`: a new one on the timeline, or with `merge` part of the last one. */
  closeWindow(now: number, merge: boolean): void {
    const c = this.engine.counts();
    const cur = [c.read.ios, c.read.bytes, c.read.latNs, c.write.ios, c.write.bytes, c.write.latNs];
    const row = [now - runStart, ...cur.map((v, k) => v - this.last[k])];
    this.last = cur;
    if (!merge) {
      this.timeline.push(...row);
      return;
    }
    const at = this.timeline.length - TIMELINE_STRIDE;
    this.timeline[at] = row[0];
    for (let k = 1; k < TIMELINE_STRIDE; k++) this.timeline[at + k] += row[k];
  }

  /** Publishes the live counters the main thread's progress line reads. */
  publish(): void {
    const c = this.engine.counts();
    this.stats[0] = c.read.ios;
    this.stats[1] = c.read.bytes;
    this.stats[2] = c.write.ios;
    this.stats[3] = c.write.bytes;
  }
}

const jobs = inits.map((init) => new Job(init));

/** The thread's engines, which one interrupt wait covers. */
const engines = jobs.map((j) => j.engine);

/** How often the live counters are published for the progress line, ms. */
const PUBLISH_MS = 10;
let nextPublish = -Infinity;

/** Publishes the live counters (every PUBLISH_MS), and closes a log window when one is due. */
function flushStats(now: number): void {
  if (now >= nextPublish) {
    for (const j of jobs) j.publish();
    nextPublish = now + PUBLISH_MS;
  }
  if (now < nextSample) return;
  for (const j of jobs) j.closeWindow(now, false);
  nextSample += sampleMs;
}

/** How long this thread polls with nothing reaped before sleeping on the interrupt (adapted within --guest-poll). */
const poll = new AdaptivePoll(o.guestPollUs);
/** Any of the thread's queues interrupting wakes it. */
const interrupts = new JobInterrupts(inits.flatMap((init) => init.queues.map((q) => q.ring.call)));

/**
 * Passes over every job until `done(now)` says so. The clock, the log windows and done() are
 * looked at every 64 passes (a pass that finds nothing is a few loads, so the thread notices a
 * completion soon after the device publishes it) and whenever polling ends: the thread polls
 * while idle for the adaptive window, then sleeps on the interrupt.
 */
function runLoop(done: (now: number) => boolean): void {
  let iter = 0;
  let idleSince = -1;
  for (;;) {
    let n = 0;
    for (const j of jobs) n += j.engine.pass();
    if (n > 0 && idleSince >= 0) {
      poll.waited((performance.now() - idleSince) * 1000, false, o.guestPollUs);
      idleSince = -1;
    }
    if ((++iter & 63) !== 0 && (n > 0 || poll.windowUs > 0)) continue;
    const now = performance.now();
    flushStats(now);
    if (done(now)) return;
    if (n > 0) continue;
    if (idleSince < 0) idleSince = now;
    if (now - idleSince < poll.windowUs / 1000) continue;
    interrupts.sleep(engines, 1);
    poll.waited((performance.now() - idleSince) * 1000, true, o.guestPollUs);
    idleSince = -1;
  }
}

/** Runs a fill or read-back phase on every job; it ends when the last request is back. */
function runPhase(phase: Phase): void {
  for (const j of jobs) j.engine.begin(phase, performance.now());
  runLoop(() => jobs.every((j) => j.engine.outstanding === 0));
}

// --verify with reads only: write the region once first, so that every read has something to check.
if (o.verify && allReads) runPhase(PHASE_FILL);

parentPort!.postMessage({ ready: true });
while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 100);

const t0 = performance.now();
const cpu0 = threadCpuMs();
runStart = t0;
nextSample = t0 + sampleMs;
for (const j of jobs) j.engine.begin(PHASE_RUN, t0);
runLoop((now) => {
  const over = Atomics.load(control, 1) !== 0 || (o.runtimeMs > 0 && now - t0 >= o.runtimeMs);
  for (const j of jobs) {
    if (j.stopping) continue;
    // Without --runtime each job does its region's bytes.
    const c = o.runtimeMs === 0 ? j.engine.counts() : undefined;
    if (over || (c && c.read.bytes + c.write.bytes >= j.init.regionBytes)) {
      j.engine.stop();
      j.stopping = true;
    }
  }
  return jobs.every((j) => j.stopping && j.engine.outstanding === 0);
});
const elapsedMs = performance.now() - t0;
// The last, partial window; one shorter than half a window (the drain at the end) joins the one before.
for (const j of jobs) {
  const lastEnd = j.timeline.length ? j.timeline[j.timeline.length - TIMELINE_STRIDE] : -Infinity;
  j.closeWindow(t0 + elapsedMs, elapsedMs - lastEnd < sampleMs / 2);
}
nextSample = Infinity;

// --verify after writes: read back every block written and check it.
if (o.verify && !allReads) runPhase(PHASE_READBACK);

for (const j of jobs) j.publish();
interrupts.close();
const cpu1 = threadCpuMs();
// The thread's CPU time is shared evenly among its jobs.
const share = (v: number) => v / jobs.length;
const results: JobResult[] = jobs.map((j) => {
  const c = j.engine.counts();
  const [hr, hw] = j.engine.histograms();
  return {
    index: j.init.index,
    read: { ios: c.read.ios, bytes: c.read.bytes, histogram: hdr.encodeIntoCompressedBase64(hr) },
    write: { ios: c.write.ios, bytes: c.write.bytes, histogram: hdr.encodeIntoCompressedBase64(hw) },
    errors: c.errors,
    verifyMismatches: c.mismatches,
    verifiedBlocks: c.verified,
    elapsedMs,
    cpu: cpu0 && cpu1 && { user: share(cpu1.user - cpu0.user), system: share(cpu1.system - cpu0.system) },
    kicks: c.kicks,
    timeline: j.timeline,
  };
});
parentPort!.postMessage(results);
