// A guest thread of the benchmark (a vCPU of the guest): runs the fio jobs placed on it (one
// each unless --guest-threads says fewer threads than jobs). Each job drives its request queues
// with its load engine (WebAssembly by default, or the TypeScript guest driver with --engine ts)
// in a closed loop, keeps `iodepth` I/Os in flight (fewer when --rate_iops holds it back), and
// with --verify stamps every written block and checks every block read. Each job has options of
// its own (a job file's sections); the device's (polling) are the same for all. The thread polls
// while completions keep coming (AdaptivePoll within --guest-poll, and not while other threads
// wait for a CPU) and sleeps until any of its queues interrupts otherwise.
import { platform } from "#platform";
import hdr from "hdr-histogram-js";
import { AdaptivePoll } from "../src/worker/adaptive-poll.js";
import { pinThread } from "../src/sys/affinity.js";
import { JobInterrupts } from "./interrupts.js";
import { PHASE_FILL, PHASE_READBACK, PHASE_RUN, type GuestEngine, type GuestThreadInit, type JobInit, type Phase, rwPattern } from "./guest-engine.js";
import { TsGuestEngine } from "./ts-engine.js";
import { WasmGuestEngine } from "./wasm-engine.js";
import { TIMELINE_STRIDE, type JobResult } from "./job-result.js";

const { jobs: inits, cpus } = await platform.threadData<GuestThreadInit>();
if (cpus) pinThread(cpus);
/** The device's options (the same in every job of the run). */
const device = inits[0].opts;
const control = new Int32Array(inits[0].control);

/** One fio job on this thread: its engine, live counters and timeline. */
class Job {
  readonly engine: GuestEngine;
  readonly o: JobInit["opts"];
  private readonly stats: Float64Array;
  readonly timeline: number[] = [];
  /** The window of the timeline: --log_avg_msec for logs and the plot, else fio's 500 ms of bw and iops samples. */
  readonly sampleMs: number;
  /** Where counting starts (after the ramp) and the end of the current log window, ms. */
  runStart = Infinity;
  nextSample = Infinity;
  /** The counters at the last window's end. */
  private last = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  /** The job stopped starting requests (runtime over, its bytes done, or told to stop). */
  stopping = false;
  /** The ramp is over and counts were reset. */
  counting = false;
  /** The limit on started requests the engine has (Infinity: none). */
  limit = Infinity;

  constructor(readonly init: JobInit) {
    const o = (this.o = init.opts);
    this.engine = o.engine === "wasm" ? new WasmGuestEngine(init) : new TsGuestEngine(init);
    this.stats = new Float64Array(init.stats, init.index * 4 * 8, 4);
    this.sampleMs = o.iopsLog || o.bwLog || o.latLog || init.plot ? o.logAvgMsec : 500;
  }

  private counters(): number[] {
    const c = this.engine.counts();
    return [c.read.ios, c.read.bytes, c.read.latNs, c.write.ios, c.write.bytes, c.write.latNs, c.trim.ios, c.trim.bytes, c.trim.latNs];
  }

  /** The ramp is over at `now`: counts from zero, the timeline from here. */
  startCounting(now: number): void {
    this.engine.resetCounts();
    this.counting = true;
    this.runStart = now;
    this.nextSample = now + this.sampleMs;
    this.last = this.counters();
  }

  /** Closes the window that ends at `now`: a new one on the timeline, or with `merge` part of the last one. */
  closeWindow(now: number, merge: boolean): void {
    const cur = this.counters();
    const row = [now - this.runStart, ...cur.map((v, k) => v - this.last[k])];
    this.last = cur;
    if (!merge) {
      this.timeline.push(...row);
      return;
    }
    const at = this.timeline.length - TIMELINE_STRIDE;
    this.timeline[at] = row[0];
    for (let k = 1; k < TIMELINE_STRIDE; k++) this.timeline[at + k] += row[k];
  }

  /** Publishes the live counters the main thread's progress line reads (trims with writes). */
  publish(): void {
    const c = this.engine.counts();
    this.stats[0] = c.read.ios;
    this.stats[1] = c.read.bytes;
    this.stats[2] = c.write.ios + c.trim.ios;
    this.stats[3] = c.write.bytes + c.trim.bytes;
  }
}

const jobs = inits.map((init) => new Job(init));

/** The thread's engines, which one interrupt wait covers. */
const engines = jobs.map((j) => j.engine);

/** How often the live counters are published for the progress line, ms. */
const PUBLISH_MS = 10;
let nextPublish = -Infinity;

/** Publishes the live counters (every PUBLISH_MS), and closes the log windows that are due. */
function flushStats(now: number): void {
  if (now >= nextPublish) {
    for (const j of jobs) j.publish();
    nextPublish = now + PUBLISH_MS;
  }
  for (const j of jobs) {
    if (now < j.nextSample) continue;
    j.closeWindow(now, false);
    j.nextSample += j.sampleMs;
  }
}

/** How long this thread polls with nothing reaped before sleeping on the interrupt (adapted within --guest-poll). */
const poll = new AdaptivePoll(device.guestPollUs);
/** Any of the thread's queues interrupting wakes it. */
const interrupts = new JobInterrupts(inits.flatMap((init) => init.queues.map((q) => q.ring.call)));

/**
 * Passes over every job until `done(now)` says so. The clock, the log windows and done() are
 * looked at every 64 passes (a pass that finds nothing is a few loads, so the thread notices a
 * completion soon after the device publishes it) and whenever polling ends: the thread polls
 * while idle for the adaptive window, then sleeps on the interrupt (at most 1 ms: a job held
 * back by --rate_iops starts its next request on time).
 */
function runLoop(done: (now: number) => boolean): void {
  let iter = 0;
  let idleSince = -1;
  /** The polling window of the idle time that started at idleSince (0 while threads wait for a CPU), µs. */
  let windowUs = 0;
  for (;;) {
    let n = 0;
    for (const j of jobs) n += j.engine.pass();
    if (n > 0 && idleSince >= 0) {
      poll.waited((performance.now() - idleSince) * 1000, false, device.guestPollUs);
      idleSince = -1;
    }
    if ((++iter & 63) !== 0 && (n > 0 || poll.windowUs > 0)) continue;
    const now = performance.now();
    flushStats(now);
    if (done(now)) return;
    if (n > 0) continue;
    if (idleSince < 0) {
      idleSince = now;
      windowUs = poll.windowAt(now);
    }
    if (now - idleSince < windowUs / 1000) continue;
    interrupts.sleep(engines, 1);
    poll.waited((performance.now() - idleSince) * 1000, true, device.guestPollUs);
    idleSince = -1;
  }
}

/** Runs a fill or read-back phase on the jobs given; it ends when their last request is back. */
function runPhase(phase: Phase, which: Job[]): void {
  if (which.length === 0) return;
  for (const j of which) j.engine.begin(phase, performance.now());
  runLoop(() => which.every((j) => j.engine.outstanding === 0));
}

// --verify with reads only: write the region once first, so that every read has something to check.
runPhase(
  PHASE_FILL,
  jobs.filter((j) => j.o.verify && rwPattern(j.o.rw).allReads),
);

platform.postToParent({ ready: true });
while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0, 100);

const t0 = performance.now();
const cpu0 = platform.threadCpuMs();
/**
 * How many requests job j may have started by `now`: a job of --size bytes starts as many as
 * fit its region (none beyond, so it moves exactly its bytes when reads and writes are of one
 * size); with --rate_iops, as many as the time since the start allows, the first at once.
 */
function allowed(j: Job, now: number): number {
  const o = j.o;
  const rated = o.rateIops > 0 ? Math.floor((o.rateIops * (now - t0)) / 1000) + 1 : Infinity;
  return Math.min(sizedLimit(j), rated);
}

/** The requests a job of --size bytes starts in all (Infinity for a timed job). */
const sizedLimit = (j: Job) => (j.o.runtimeMs === 0 ? Math.floor(j.init.regionBytes / Math.min(j.o.bs, j.o.bsWrite)) : Infinity);

for (const j of jobs) {
  j.limit = allowed(j, t0);
  if (j.limit !== Infinity) j.engine.limit(j.limit);
  j.engine.begin(PHASE_RUN, t0);
  if (j.o.rampMs === 0) j.startCounting(t0);
}
runLoop((now) => {
  const stopped = Atomics.load(control, 1) !== 0;
  for (const j of jobs) {
    if (j.stopping) continue;
    const o = j.o;
    if (!j.counting && now - t0 >= o.rampMs) j.startCounting(now);
    // With --runtime the job runs that long after its ramp; without, it does its region's bytes.
    const c = o.runtimeMs === 0 && j.counting ? j.engine.counts() : undefined;
    const over = j.counting && o.runtimeMs > 0 && now - j.runStart >= o.runtimeMs;
    // A job of --size bytes is done when they are, or when it started all it may and they are back (some failed).
    const sizeDone =
      c &&
      (c.read.bytes + c.write.bytes + c.trim.bytes >= j.init.regionBytes || (j.engine.outstanding === 0 && j.engine.idle > 0 && j.limit === sizedLimit(j)));
    if (stopped || over || sizeDone) {
      j.engine.stop();
      j.stopping = true;
    } else if (o.rateIops > 0) {
      // The next passes may start what the time since the start allows.
      j.limit = allowed(j, now);
      j.engine.limit(j.limit);
    }
  }
  return jobs.every((j) => j.stopping && j.engine.outstanding === 0);
});
const end = performance.now();
// The last, partial window; one shorter than half a window (the drain at the end) joins the one before.
for (const j of jobs) {
  if (!j.counting) j.startCounting(end);
  const elapsed = end - j.runStart;
  const lastEnd = j.timeline.length ? j.timeline[j.timeline.length - TIMELINE_STRIDE] : -Infinity;
  j.closeWindow(end, elapsed - lastEnd < j.sampleMs / 2);
}

// --verify after writes: read back every block written and check it (unless told to stop).
if (Atomics.load(control, 1) === 0)
  runPhase(
    PHASE_READBACK,
    jobs.filter((j) => j.o.verify && !rwPattern(j.o.rw).allReads),
  );

for (const j of jobs) j.publish();
interrupts.close();
const cpu1 = platform.threadCpuMs();
// The thread's CPU time is shared evenly among its jobs.
const share = (v: number) => v / jobs.length;
const results: JobResult[] = jobs.map((j) => {
  const c = j.engine.counts();
  const [hr, hw, ht] = j.engine.histograms();
  return {
    index: j.init.index,
    name: j.o.name,
    job: j.init.job,
    read: { ios: c.read.ios, bytes: c.read.bytes, histogram: hdr.encodeIntoCompressedBase64(hr) },
    write: { ios: c.write.ios, bytes: c.write.bytes, histogram: hdr.encodeIntoCompressedBase64(hw) },
    trim: { ios: c.trim.ios, bytes: c.trim.bytes, histogram: hdr.encodeIntoCompressedBase64(ht) },
    errors: c.errors,
    firstError: j.engine.firstError(),
    verifyMismatches: c.mismatches,
    verifiedBlocks: c.verified,
    elapsedMs: end - j.runStart,
    cpu: cpu0 && cpu1 && { user: share(cpu1.user - cpu0.user), system: share(cpu1.system - cpu0.system) },
    kicks: c.kicks,
    timeline: j.timeline,
  };
});
platform.postToParent(results);
