// One run of the benchmark, on either platform (Node, or a browser page): a testbed of its own
// with the run's LUN, the jobs' clones on their queues, the guest threads (the guest's vCPUs)
// that drive them, and what they report. The command line (fio.ts) and the browser demo both
// run jobs through here.
import { platform } from "#platform";
import { openBackstore, type QueuedBackstore } from "#backstores";
import { createBlkTestbed, createTestbed } from "../src/testbed.js";
import type { VhostDevice } from "../src/vhost/vhost-device.js";
import type { VhostVirtioDevice } from "../src/device/vhost-virtio-device.js";
import type { GuestMemory } from "../src/guest/guest-memory.js";
import type { VirtioBlkDriver } from "../src/guest/blk-driver.js";
import type { EventFdHandle } from "../src/sys/eventfd.js";
import { SharedMemory } from "../src/memory/shared-memory.js";
import { commandRetryingUA } from "../src/guest/scan.js";
import { testUnitReady } from "../src/guest/scsi-commands.js";
import { polledSlotSize } from "../src/guest/polled-queue.js";
import { compiledModule } from "../src/sys/compiled-module.js";
import type { LunConfig } from "../src/target/tpg.js";
import type { FioOptions } from "./options.js";
import { fmtBw, fmtIops, type DeviceInfo, type RunReport } from "./report.js";
import type { JobResult } from "./job-result.js";
import type { GuestThreadInit, JobInit } from "./guest-engine.js";
import { engineAreaBytes } from "./wasm-engine.js";
import { lunFor, regionOf, RunError, type Region } from "./region.js";

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(n));
const maxBs = (o: FioOptions) => Math.max(o.bs, o.bsWrite);

/** Tells the runs to stop early (Ctrl-C, a page's Stop): the jobs stop starting requests, and whatever listens stops too. */
export class StopSignal {
  stopped = false;
  private readonly listeners = new Set<() => void>();
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
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
export interface RunOutcome {
  jobs: JobResult[];
  dev: DeviceInfo;
  regions: Region[];
  capacity: number;
  /** What was done before the run (a file laid out). */
  before: string[];
}

/** The report of a run's outcome: its jobs, results, device side and regions; `before` what was done first (the outcome's own by default). */
export function reportOf(jobs: FioOptions[], outcome: RunOutcome, before: string[] = outcome.before): RunReport {
  return { jobs, results: outcome.jobs, dev: outcome.dev, regions: outcome.regions, capacity: outcome.capacity, before, notes: [] };
}

/** The run's rate over the last half second: read and write IOPS, and when (seconds since the start). */
export interface Rate {
  read: number;
  write: number;
  seconds: number;
}

/** How a run is made: --plot's windows, the stop signal, the progress line (every 0.5 s), and the LUN (lunFor() unless the caller lays out files). */
export interface RunSettings {
  plot: boolean;
  stop: StopSignal;
  progress: (line: string, rate: Rate) => void;
  lun?: (jobs: FioOptions[]) => { lun: LunConfig; laidOut?: string };
}

/** What a run needs of its testbed, whichever device type it has. */
interface RunBed {
  shm: SharedMemory;
  mem: GuestMemory;
  vhost: VhostDevice;
  /** The device model (dirty logging). */
  device: VhostVirtioDevice<VhostDevice>;
  /** The virtqueue index of request queue q. */
  vq(q: number): number;
  /** Hands request queue q to a job: its ring and the eventfds behind its notifiers. */
  release(q: number): { ring: ReturnType<VirtioBlkDriver["releaseQueue"]>; notifiers: { kick: EventFdHandle; call: EventFdHandle } };
  /** CPU time of the disk's dedicated I/O threads so far, ms (undefined: none, or not known). */
  ioCpu(): Promise<{ user: number; system: number } | undefined>;
  /** The target number requests address (virtio-scsi; 0 for virtio-blk). */
  target: number;
  close(): Promise<void>;
}

/** The run's device over its disk: virtio-scsi with one LUN, or virtio-blk. */
async function runBed(
  o: FioOptions,
  lun: LunConfig,
  opened: QueuedBackstore | undefined,
  sizes: { queues: number; queueSize: number; guestMemory: number },
): Promise<RunBed> {
  const common = {
    queues: sizes.queues,
    workers: o.workers,
    queueSize: sizes.queueSize,
    process: { workerCpus: o.workerCpus && ((id: number) => o.workerCpus![id]) },
    guestMemory: sizes.guestMemory,
  };
  if (o.device === "blk") {
    const { blockSize, readOnly } = lun as { blockSize?: 512 | 4096; readOnly?: boolean };
    const tb = await createBlkTestbed({ ...common, backstore: opened ? { backstore: opened } : lun, disk: { blockSize, readOnly } });
    return {
      shm: tb.shm,
      mem: tb.mem,
      vhost: tb.device.vhost,
      device: tb.device,
      vq: (q) => q,
      release: (q) => ({ ring: tb.driver.releaseQueue(q), notifiers: tb.device.handOverNotifiers(q) }),
      ioCpu: () => tb.proc.blockBackend(tb.backend).ioThreadCpu(),
      target: 0,
      close: () => tb.close(),
    };
  }
  const tb = await createTestbed({ ...common, luns: [opened ? { ...lun, backstore: opened } : lun] });
  await commandRetryingUA(tb.driver, { lun: 0, cdb: testUnitReady() });
  return {
    shm: tb.shm,
    mem: tb.mem,
    vhost: tb.device.vhost,
    device: tb.device,
    vq: (q) => 2 + q,
    release: (q) => ({ ring: tb.driver.releaseQueue(q), notifiers: tb.device.handOverNotifiers(2 + q) }),
    ioCpu: async () => tb.tpg.lun(0)?.ioThreadCpu(),
    target: tb.tpg.tag,
    close: () => tb.close(),
  };
}

/**
 * Runs one run's jobs at the same time on a testbed of their own (its LUN per settings.lun), until
 * they end or `stop` says so; the testbed is closed (its connections to the storage too) before
 * this returns.
 */
export async function runJobs(jobs: FioOptions[], { plot, stop, progress, lun: lunOf = lunFor }: RunSettings): Promise<RunOutcome> {
  const o = jobs[0];
  const { lun, laidOut } = lunOf(jobs);
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
  let bed: RunBed | undefined;
  try {
    const capacity = store ? store.size : (lun as { size: number }).size;
    const regions = jobs.map((j) => regionOf(j, capacity));
    const trims = jobs.find((j) => j.rw.endsWith("trim"));
    if (trims && store && !store.features.discard)
      throw new RunError(
        `job ${trims.name}: --rw=${trims.rw} sends ${o.device === "blk" ? "DISCARD" : "UNMAP"}, which a ${store.name} backstore does not offer`,
      );
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
    store = undefined; // the testbed owns it from here, and closes it if it fails
    const tb = (bed = await runBed(o, lun, opened, { queues: nQueues, queueSize, guestMemory: Math.ceil(guestMemory / 65536) * 65536 }));
    const vhost = tb.vhost;
    for (let q = 0; q < nQueues; q++) await vhost.SET_VRING_BUSYLOOP_TIMEOUT({ index: tb.vq(q), num: o.busyPollUs });
    if (o.dirtyLog) await tb.device.startLogging();
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
          const { ring: r, notifiers } = tb.release(q);
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
        target: tb.target,
        regionStart: c.region.offset,
        regionBytes: c.region.bytes,
        stats,
        control,
      }),
    );
    // The guest's threads (its vCPUs): clone j runs on thread j % --guest-threads.
    const jobModule = compiledModule(new URL("./job.ts", import.meta.url));
    const threads = Array.from({ length: o.guestThreads }, (_, t) =>
      platform.startThread(jobModule, { jobs: inits.filter((_, j) => j % o.guestThreads === t), cpus: o.guestCpus?.[t] } satisfies GuestThreadInit),
    );
    const isReady = (m: unknown) => typeof m === "object" && m !== null && "ready" in m;
    const ready = threads.map((w) => new Promise<void>((r) => w.onMessage((m) => isReady(m) && r())));
    const results = threads.map(
      (w) =>
        new Promise<JobResult[]>((resolve, reject) => {
          w.onMessage((m) => {
            if (!isReady(m)) resolve(m as JobResult[]);
          });
          w.onError(reject);
          w.onExit((code) => reject(new Error(`job thread exited with code ${code}`)));
        }),
    );
    await Promise.all(ready);
    const cpu0 = await vhost.workerCpu();
    const io0 = await tb.ioCpu();
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
    // A migration's pre-copy rounds read and clear the log; here every 100 ms.
    const log = { syncs: 0, pages: 0 };
    const sync = () => {
      log.syncs++;
      log.pages += tb.device.syncLog().length;
    };
    const syncing = o.dirtyLog ? setInterval(sync, 100) : undefined;
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
      const rate = { read: (r - last.r) / dt, write: (w - last.w) / dt, seconds: (now - t0) / 1000 };
      progress(
        `Jobs: ${clones.length} (f=${clones.length}): [r=${fmtBw((rb - last.rb) / dt)},w=${fmtBw((wb - last.wb) / dt)}][r=${fmtIops(rate.read)},w=${fmtIops(rate.write)} IOPS][eta ${eta}s]`,
        rate,
      );
      last = { t: now, r, rb, w, wb };
    }, 500);
    let jobResults: JobResult[];
    try {
      jobResults = (await Promise.all(results)).flat().sort((a, b) => a.index - b.index);
    } finally {
      clearInterval(timer);
      clearInterval(syncing);
      off();
    }
    if (o.dirtyLog) sync(); // the last round: what the run wrote since the one before
    const cpu1 = await vhost.workerCpu();
    const io1 = await tb.ioCpu();
    for (const w of threads) await w.terminate();
    const dev: DeviceInfo = {
      workers: cpu1.map((c) => {
        const b = cpu0.find((x) => x.id === c.id) ?? { user: 0, system: 0, busy: 0 };
        return { id: c.id, user: c.user - b.user, system: c.system - b.system, busy: c.busy - b.busy };
      }),
      ioThreadsCpu: io0 && io1 ? { user: io1.user - io0.user, system: io1.system - io0.system } : undefined,
      guestCpu: jobResults.reduce((s, j) => ({ user: s.user + (j.cpu?.user ?? 0), system: s.system + (j.cpu?.system ?? 0) }), { user: 0, system: 0 }),
      kicks: jobResults.reduce((s, j) => s + j.kicks, 0),
      ...(o.dirtyLog && { dirtyLog: log }),
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
  return (await runJobs(jobs, { plot: false, stop: new StopSignal(), progress: () => {} })).jobs;
}
