#!/usr/bin/env node
// The main job (`npm start`): a fio-like benchmark of the whole vhost-scsi path on a RAM-disk
// LUN by default. The device side (QEMU-side device model, /dev/vhost-scsi, vhost worker
// threads) runs as a user would set it up; the guest driver probes it, then hands its request
// queues to fio's jobs, which guest threads (the guest's vCPUs) drive polled, in a closed loop.
// A command line or job file may hold several jobs: those between stonewalls run at the same
// time on one device (a run), the runs one after another.
import { Worker } from "node:worker_threads";
import { accessSync, closeSync, constants, openSync, realpathSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createTestbed, type Testbed } from "../src/testbed.js";
import { openBackstore, type QueuedBackstore } from "../src/backstore/index.js";
import { SharedMemory } from "../src/memory/shared-memory.js";
import { commandRetryingUA } from "../src/guest/scan.js";
import { testUnitReady } from "../src/guest/scsi-commands.js";
import { polledSlotSize } from "../src/guest/polled-queue.js";
import { type CommandLine, helpText, OptionError, PROGRAM, packageVersion, parseCommandLine, type FioOptions, type ProgramOptions } from "./options.js";
import { fmtBw, fmtIops, runIops, jsonReport, textReport, referenceLines, type DeviceInfo, type RunReport } from "./report.js";
import { fittingLabel, fittingOptions } from "./fitting-reference.js";
import { backstoreReference } from "./backstore-reference.js";
import { bracket, nativeReference, type NativeReference } from "./native-reference.js";
import { writeFioLogs } from "./fio-logs.js";
import { plotSvg } from "./plot.js";
import type { JobResult } from "./job-result.js";
import type { GuestThreadInit, JobInit } from "./guest-engine.js";
import { engineAreaBytes } from "./wasm-engine.js";
import { lunFor, regionOf, RunError, type Region } from "./region.js";
import { yardsticksStopped } from "./yardstick-tool.js";

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(n));
const maxBs = (o: FioOptions) => Math.max(o.bs, o.bsWrite);

/** Tells the runs to stop early (Ctrl-C): the jobs stop starting requests, the yardsticks are killed. */
export class StopSignal {
  stopped = false;
  private readonly listeners = new Set<() => void>();
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    yardsticksStopped.abort();
    for (const l of this.listeners) l();
  }
  on(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** One clone of a job (fio's numjobs) as it runs: its job's options, its queues and its region. */
interface Clone {
  o: FioOptions;
  /** Its job's place among the run's. */
  job: number;
  /** Device request queues (0-based, of the run's queues) and the iodepth on each. */
  queues: number[];
  depths: number[];
  region: Region;
}

/** A run's jobs as clones on the device's queues: each job takes its own queues, shared among its clones round robin. */
function clonesOf(jobs: FioOptions[], regions: Region[]): Clone[] {
  const out: Clone[] = [];
  let base = 0;
  jobs.forEach((o, j) => {
    for (let k = 0; k < o.numjobs; k++) {
      const queues = Array.from({ length: o.queues }, (_, q) => base + q).filter((q) => (q - base) % o.numjobs === k);
      const depths = queues.map((_, i) => Math.max(1, Math.floor(o.iodepth / queues.length) + (i < o.iodepth % queues.length ? 1 : 0)));
      // With --verify each clone checks a slice of its own; without, all clones share the region.
      const r = regions[j];
      const slice = Math.floor(r.bytes / o.numjobs / o.bs) * o.bs;
      const region = o.verify ? { offset: r.offset + k * slice, bytes: slice } : r;
      if (region.bytes < Math.max(o.bs, o.bsWrite))
        throw new RunError(`job ${o.name}: ${o.numjobs} clones with --verify leave each less than one I/O of the region`);
      out.push({ o, job: j, queues, depths, region });
    }
    base += o.queues;
  });
  return out;
}

/** What one run of jobs gave: their results, the device side, and what the yardsticks need. */
interface RunOutcome {
  jobs: JobResult[];
  dev: DeviceInfo;
  regions: Region[];
  capacity: number;
  /** What was done before the run (a file laid out). */
  before: string[];
}

/**
 * Runs one run's jobs at the same time on a testbed of their own (its LUN per lunFor()), until
 * they end or `stop` says so; the testbed is closed (its connections to the storage too) before
 * this returns.
 */
async function runJobs(jobs: FioOptions[], plot: boolean, stop: StopSignal, progress: (line: string) => void): Promise<RunOutcome> {
  const o = jobs[0];
  const { lun, laidOut } = lunFor(jobs);
  const before = laidOut ? [laidOut] : [];
  // A backstore served elsewhere is opened first: its capacity sizes the regions, and they the guest's RAM.
  const inPlace = lun.backstore === "ram" || lun.backstore === "null";
  let store: QueuedBackstore | undefined;
  if (!inPlace) {
    try {
      store = (await openBackstore(lun, SharedMemory.create({ deviceBytes: 0, guestBytes: 0 }), lun.readOnly)) as QueuedBackstore;
    } catch (e) {
      throw new RunError(`--backstore ${o.backstoreArg}: ${(e as Error).message}`);
    }
  }
  let bed: Testbed | undefined;
  try {
    const capacity = store ? store.size : (lun as { size: number }).size;
    const regions = jobs.map((j) => regionOf(j, capacity));
    const trims = jobs.find((j) => j.rw.endsWith("trim"));
    if (trims && store && !store.features.discard)
      throw new RunError(`job ${trims.name}: --rw=${trims.rw} sends UNMAP, which a ${store.name} LUN does not offer`);
    const clones = clonesOf(jobs, regions);
    // Queues sized for the deepest one: each in-flight I/O holds three descriptors.
    const nQueues = jobs.reduce((s, j) => s + j.queues, 0);
    const queueSize = Math.min(32768, Math.max(128, nextPow2(3 * Math.max(...clones.flatMap((c) => c.depths)))));
    // The WebAssembly engine's state is the guest program's memory: guest RAM, one area per clone.
    const engineBytes = clones.map((c) =>
      c.o.engine === "wasm" ? engineAreaBytes(c.depths, c.o.verify ? Math.floor(c.region.bytes / c.o.bs) : 0, c.o.verify) : 0,
    );
    const bufferBytes = clones.reduce((s, c) => s + c.depths.reduce((t, d) => t + d * polledSlotSize(maxBs(c.o)), 0), 0);
    const guestMemory = bufferBytes + engineBytes.reduce((a, b) => a + b + 4096, 0) + 16 * queueSize * (nQueues + 2) * 2 + (8 << 20);
    const opened = store;
    store = undefined; // createTestbed owns it from here, and closes it if it fails
    const tb = (bed = await createTestbed({
      luns: [opened ? { ...lun, backstore: opened } : lun],
      queues: nQueues,
      workers: o.workers,
      queueSize,
      process: { workerCpus: o.workerCpus && ((id) => o.workerCpus![id]) },
      guestMemory: Math.ceil(guestMemory / 65536) * 65536,
    }));
    await commandRetryingUA(tb.driver, { lun: 0, cdb: testUnitReady() });
    const vhost = tb.device.vhost;
    for (let q = 0; q < nQueues; q++) await vhost.SET_VRING_BUSYLOOP_TIMEOUT({ index: 2 + q, num: o.busyPollUs });
    const ram = tb.mem;
    const stats = new SharedArrayBuffer(clones.length * 4 * 8);
    const control = new SharedArrayBuffer(8);
    const inits = clones.map(
      (c, j): JobInit => ({
        index: j,
        job: c.job,
        buffer: tb.shm.buffer,
        memory: tb.shm.memory,
        engineArea: engineBytes[j] ? ram.hva(ram.alloc(engineBytes[j], 4096)) : 0,
        queues: c.queues.map((q, k) => {
          const r = tb.driver.releaseQueue(q);
          const notifiers = tb.device.handOverNotifiers(2 + q);
          const bufferGpa = ram.alloc(c.depths[k] * polledSlotSize(maxBs(c.o)), 4096);
          return {
            ring: {
              num: r.num,
              desc: ram.hva(r.desc),
              avail: ram.hva(r.avail),
              used: ram.hva(r.used),
              availIdx: r.availIdx,
              usedIdx: r.usedIdx,
              eventIdx: r.eventIdx,
              kick: notifiers.kick,
              call: notifiers.call,
            },
            depth: c.depths[k],
            bufferGpa,
            bufferHva: ram.hva(bufferGpa),
          };
        }),
        opts: c.o,
        plot,
        target: tb.tpg.tag,
        regionStart: c.region.offset,
        regionBytes: c.region.bytes,
        stats,
        control,
      }),
    );
    // The guest's threads (its vCPUs): clone j runs on thread j % --guest-threads.
    const threads = Array.from(
      { length: o.guestThreads },
      (_, t) =>
        new Worker(new URL("./job.js", import.meta.url), {
          workerData: { jobs: inits.filter((_, j) => j % o.guestThreads === t), cpus: o.guestCpus?.[t] } satisfies GuestThreadInit,
        }),
    );
    const results = threads.map(
      (w) =>
        new Promise<JobResult[]>((resolve, reject) => {
          w.on("message", (m) => {
            if (!("ready" in m)) resolve(m as JobResult[]);
          });
          w.once("error", reject);
          w.once("exit", (code) => reject(new Error(`job thread exited with code ${code}`)));
        }),
    );
    await Promise.all(threads.map((w) => new Promise<void>((r) => w.on("message", (m) => "ready" in m && r()))));
    const cpu0 = await vhost.workerCpu();
    const ctl = new Int32Array(control);
    const halt = () => {
      Atomics.store(ctl, 1, 1);
      Atomics.notify(ctl, 0);
    };
    const off = stop.on(halt);
    if (stop.stopped) halt();
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    const t0 = performance.now();
    const live = new Float64Array(stats);
    let last = { t: t0, r: 0, rb: 0, w: 0, wb: 0 };
    const longest = Math.max(...jobs.map((j) => j.rampMs + j.runtimeMs));
    const timer = setInterval(() => {
      const now = performance.now();
      let r = 0,
        rb = 0,
        w = 0,
        wb = 0;
      for (let j = 0; j < clones.length; j++) {
        r += live[4 * j];
        rb += live[4 * j + 1];
        w += live[4 * j + 2];
        wb += live[4 * j + 3];
      }
      const dt = (now - last.t) / 1000;
      const eta = jobs.every((j) => j.runtimeMs > 0) ? Math.max(0, Math.ceil((longest - (now - t0)) / 1000)) : "?";
      progress(
        `Jobs: ${clones.length} (f=${clones.length}): [r=${fmtBw((rb - last.rb) / dt)},w=${fmtBw((wb - last.wb) / dt)}][r=${fmtIops((r - last.r) / dt)},w=${fmtIops((w - last.w) / dt)} IOPS][eta ${eta}s]`,
      );
      last = { t: now, r, rb, w, wb };
    }, 500);
    let jobResults: JobResult[];
    try {
      jobResults = (await Promise.all(results)).flat().sort((a, b) => a.index - b.index);
    } finally {
      clearInterval(timer);
      off();
    }
    const cpu1 = await vhost.workerCpu();
    for (const w of threads) await w.terminate();
    const dev: DeviceInfo = {
      workers: cpu1.map((c) => {
        const b = cpu0.find((x) => x.id === c.id) ?? { user: 0, system: 0, busy: 0 };
        return { id: c.id, user: c.user - b.user, system: c.system - b.system, busy: c.busy - b.busy };
      }),
      guestCpu: jobResults.reduce((s, j) => ({ user: s.user + (j.cpu?.user ?? 0), system: s.system + (j.cpu?.system ?? 0) }), { user: 0, system: 0 }),
      kicks: jobResults.reduce((s, j) => s + j.kicks, 0),
      references: [],
    };
    return { jobs: jobResults, dev, regions, capacity, before };
  } finally {
    await bed?.close();
    await store?.close();
  }
}

/** A run's jobs measured alone: no yardsticks, no report (the micro-benchmarks compare runs this way). */
export async function measureJobs(jobs: FioOptions[]): Promise<JobResult[]> {
  return (await runJobs(jobs, false, new StopSignal(), () => {})).jobs;
}

/** How long a yardstick runs: right before and right after the run, half the time each. */
const referenceMs = (o: FioOptions) => Math.min(2000, Math.max(500, o.runtimeMs || 1000));

/**
 * One run and its yardsticks: the C loop (a RAM disk) and the configuration that fits the
 * cores run right before and right after it; the backstore's own storage after it (its LUN
 * has let go of it then). The run's own report is printed (`print`) before any yardstick is
 * done; a run with errors is compared with nothing. The yardsticks compare a run of one job.
 * Undefined when stopped before the run began.
 */
export async function runOne(
  jobs: FioOptions[],
  program: ProgramOptions,
  stop: StopSignal,
  print: (report: RunReport, yardsticks: boolean) => void,
  progress: (line: string) => void = () => {},
): Promise<RunReport | undefined> {
  const o = jobs[0];
  const refs = jobs.length === 1 ? program.references : new Set<never>();
  const ms = referenceMs(o);
  const cNeeded = refs.has("c") && o.backstore.backstore === "ram";
  const fitting = refs.has("fitting") ? fittingOptions(o, ms / 2) : undefined;
  // The C loop's RAM disk is the run's region, so that both pay the same cache and TLB misses.
  const nativeRun = () => nativeReference(o.bs, o.iodepth, ms / 2, [2], regionOf(o, (lunFor(jobs).lun as { size: number }).size).bytes);
  const nativeBefore: NativeReference | undefined = cNeeded && !stop.stopped ? await nativeRun() : undefined;
  const fittingBefore = fitting && !stop.stopped ? await runJobs([fitting], false, stop, () => {}) : undefined;
  if (stop.stopped) return undefined;
  const outcome = await runJobs(jobs, program.plot !== undefined, stop, progress);
  const report: RunReport = {
    jobs,
    results: outcome.jobs,
    dev: outcome.dev,
    regions: outcome.regions,
    capacity: outcome.capacity,
    before: outcome.before,
    notes: [],
  };
  if (stop.stopped) report.notes.push("interrupted (Ctrl-C): the figures are of the part that ran");
  const errors = outcome.jobs.some((j) => j.errors > 0);
  const yardsticks =
    !errors && !stop.stopped && (cNeeded || fitting !== undefined || (refs.size > 0 && o.backstore.backstore !== "ram" && o.backstore.backstore !== "null"));
  if (jobs.length > 1 && program.references.size) report.notes.push("yardsticks: not run: they compare a run of one job, this one has several at once");
  if (errors && program.references.size) report.notes.push("yardsticks: not run: the run had errors, and its figures are not the device's");
  print(report, yardsticks);
  if (!yardsticks) return report;
  const dev = outcome.dev;
  dev.references = await backstoreReference(o, outcome.regions[0], refs, ms);
  if (nativeBefore) dev.native = stop.stopped ? nativeBefore : bracket(nativeBefore, await nativeRun());
  if (fitting && fittingBefore && !stop.stopped) {
    const after = await runJobs([fitting], false, stop, () => {});
    const iopsEach: [number, number] = [runIops(fittingBefore.jobs), runIops(after.jobs)];
    dev.fitting = { options: fittingLabel(fitting), iops: (iopsEach[0] + iopsEach[1]) / 2, iopsEach };
  }
  return report;
}

/** Checks, before any I/O, that every file the run will write can be written (fio's --output, logs, --plot). */
function checkOutputs(program: ProgramOptions, runs: FioOptions[][]): void {
  const stems = runs.flat().flatMap((o) => [o.iopsLog, o.bwLog, o.latLog].filter((s): s is string => !!s));
  for (const [what, path] of [...stems.map((s) => ["log", s] as const), ["--plot", program.plot] as const, ["--output", program.output] as const]) {
    if (!path) continue;
    const dir = dirname(resolve(path));
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      throw new OptionError(`${what} ${path}: cannot write in ${dir} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
}

/** Runs a command line's runs in order and writes their reports; the exit code. */
async function main(argv: string[]): Promise<number> {
  let cl: CommandLine;
  try {
    cl = parseCommandLine(argv);
    checkOutputs(cl.program, cl.runs);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`${PROGRAM}: ${e.message}\n(see --help)\n`);
      return 1;
    }
    throw e;
  }
  const { program, runs } = cl;
  if (program.help) {
    process.stdout.write(helpText());
    return 0;
  }
  if (program.version) {
    process.stdout.write(`${PROGRAM} ${packageVersion()}\n`);
    return 0;
  }
  const out = program.output ? openSync(program.output, "w") : 1;
  const write = (text: string) => writeSync(out, text);
  const stop = new StopSignal();
  // Ctrl-C: the jobs stop and the partial report is printed, as fio does; a second one ends at once.
  process.on("SIGINT", () => {
    if (stop.stopped) process.exit(130);
    process.stderr.write(`\n${PROGRAM}: interrupted; stopping the jobs (Ctrl-C again to quit at once)\n`);
    stop.stop();
  });
  const text = program.formats.includes("normal");
  const tty = process.stderr.isTTY && (out !== 1 || program.formats.every((f) => f === "normal"));
  const progress = tty ? (line: string) => process.stderr.write(`\r${line}\x1b[K`) : undefined;
  const reports: RunReport[] = [];
  let firstJob = 1;
  try {
    for (const [n, jobs] of runs.entries()) {
      if (stop.stopped) break;
      let r: RunReport | undefined;
      try {
        r = await runOne(
          jobs,
          program,
          stop,
          (rep, more) => {
            if (tty) process.stderr.write("\r\x1b[K");
            if (text) write(`${n > 0 ? "\n" : ""}${textReport(rep)}\n`);
            if (tty && more) process.stderr.write("yardsticks: running (same storage, same run) ...");
          },
          progress,
        );
      } catch (e) {
        if (e instanceof RunError) {
          process.stderr.write(`${PROGRAM}: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
      if (tty) process.stderr.write("\r\x1b[K");
      if (!r) break;
      const lines = referenceLines(r);
      if (text && lines.length) write(`${lines.join("\n")}\n`);
      writeFioLogs(r, firstJob);
      firstJob += r.results.length;
      reports.push(r);
    }
    for (const f of program.formats) if (f !== "normal") write(`${JSON.stringify(jsonReport(reports, f === "json+"), null, 2)}\n`);
    if (program.plot && reports.length) {
      const fd = openSync(program.plot, "w");
      writeSync(fd, plotSvg(reports));
      closeSync(fd);
    }
  } finally {
    if (out !== 1) closeSync(out);
  }
  const all = reports.flatMap((r) => r.results);
  if (stop.stopped) return 130;
  if (all.some((j) => j.verifyMismatches > 0)) return 2;
  return all.some((j) => j.errors > 0) ? 1 : 0;
}

/** Whether this module is the program being run (directly, or through the package's bin symlink). */
function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${PROGRAM}: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
