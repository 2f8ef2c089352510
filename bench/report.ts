import type { Histogram } from "hdr-histogram-js";
import { platform } from "#platform";
import { busyThreads, type FioOptions } from "./options.js";
import type { Reference } from "./backstore-reference.js";
import type { NativeReference } from "./native-reference.js";
import { DIRECTIONS, mergedLatencies, mergeResults, perSecond, totalIos, type Direction, type JobResult } from "./job-result.js";
import { fioJson } from "./fio-json.js";
import type { FirstError } from "./guest-engine.js";
import { fmtRegion, type Region } from "./region.js";
import { ASC_NAMES, SENSE_KEYS } from "../src/guest/sense.js";

/** One run (the jobs between stonewalls, at the same time on one device): its options, results and device side. */
export interface RunReport {
  jobs: FioOptions[];
  results: JobResult[];
  dev: DeviceInfo;
  /** Each job's region, and the LUN's capacity, bytes. */
  regions: Region[];
  capacity: number;
  /** What was done before the run (a file laid out), said first. */
  before: string[];
  /** Words on what did not happen (yardsticks not run), said last. */
  notes: string[];
}

interface Summary {
  ios: number;
  bytes: number;
  runtimeMs: number;
  iops: number;
  bw: number;
  /** Latencies (ns). */
  lat: Histogram;
}

/** One direction summed over the jobs (fio's group reporting). */
function summarize(jobs: JobResult[], dir: Direction): Summary {
  const ios = jobs.reduce((s, j) => s + j[dir].ios, 0);
  const bytes = jobs.reduce((s, j) => s + j[dir].bytes, 0);
  const runtimeMs = Math.max(...jobs.map((j) => j.elapsedMs));
  return { ios, bytes, runtimeMs, iops: perSecond(ios, runtimeMs), bw: perSecond(bytes, runtimeMs), lat: mergedLatencies(jobs.map((j) => j[dir])) };
}

const units = (n: number, base: number, names: string[]) => {
  let i = 0;
  while (n >= base * 10 && i < names.length - 1) {
    n /= base;
    i++;
  }
  return `${n >= 100 ? Math.round(n) : n.toPrecision(3)}${names[i]}`;
};
export const fmtIops = (n: number) => units(n, 1000, ["", "k", "M"]);
export const fmtBw = (n: number) => `${units(n, 1024, ["B", "KiB", "MiB", "GiB"])}/s`;
const fmtBytes = (n: number) => `${n / 1048576}MiB`;
/** How far a yardstick's runs before and after may differ (a share of their mean) before the report says the machine's state moved. */
const BRACKET_SPREAD = 0.1;
/** A yardstick run right before and right after the run: their mean's wording, with a word on how uncertain a ratio to it is when they differ. */
export function fmtBracket([before, after]: readonly [number, number]): string {
  const spread = Math.abs(after - before) / ((before + after) / 2);
  const moved =
    spread > BRACKET_SPREAD ? `; they differ by ${Math.round(spread * 100)}%: the machine's state moved, the ratio is uncertain by about as much` : "";
  return `(mean of ${fmtIops(before)} right before this run and ${fmtIops(after)} right after${moved})`;
}

/**
 * A yardstick whose slowest stretch ran at less than half its fastest (within a run or between
 * the runs before and after) was starved by something else on the machine: a ratio to it says
 * nothing. The reason, or undefined when it ran steadily enough.
 */
export function unsteady([slowest, fastest]: readonly [number, number]): string | undefined {
  if (!(slowest < fastest / 2)) return undefined;
  return `the ratio is not meaningful: the yardstick ran at ${fmtIops(slowest)} to ${fmtIops(fastest)} IOPS over its stretches (the machine was busy); run again on a quieter machine`;
}
const fmtNs = (n: number) => (n >= 10_000_000 ? `${(n / 1e6).toFixed(1)}ms` : n >= 10_000 ? `${(n / 1e3).toFixed(1)}us` : `${Math.round(n)}ns`);

export interface DeviceInfo {
  /** Per vhost worker: CPU time and time spent serving requests (busy), ms. */
  workers: { id: number; user: number; system: number; busy: number }[];
  guestCpu: { user: number; system: number };
  /** --dirty-log: how many times the log was synced, and the dirty pages those syncs returned together. */
  dirtyLog?: { syncs: number; pages: number };
  /** The backstore's dedicated I/O threads' CPU time in the run, ms (undefined: none, or not known). */
  ioThreadsCpu?: { user: number; system: number };
  kicks: number;
  /** The C request loop and C memcpy at the same block size, same run (RAM disk runs). */
  native?: NativeReference;
  /** Yardsticks on the same backstore storage, same run (file, nbd). */
  references: Reference[];
  /**
   * Busy threads beyond the cores: the largest configuration that fits them, run right before
   * and right after (its options that differ, its mean IOPS, and each run's).
   */
  fitting?: { options: string; iops: number; iopsEach: [number, number] };
}

/** The jobs' IOPS, every direction together. */
export function runIops(jobs: JobResult[]): number {
  return perSecond(
    jobs.reduce((s, j) => s + totalIos(j), 0),
    Math.max(...jobs.map((j) => j.elapsedMs)),
  );
}

/** The errno fio reports for a failed I/O: the block layer turns a SCSI error into EIO. */
const EIO = 5;

/** A failed request as the report says it: what it was and how the device answered. */
export function fmtFirstError(e: FirstError): string {
  const what = `${e.op} of ${e.length} bytes at offset ${e.offset}`;
  if (e.response !== 0) return `${what}: virtio-scsi response ${e.response}`;
  const status =
    e.status === 2 ? "CHECK CONDITION" : e.status === 0x18 ? "RESERVATION CONFLICT" : e.status === 8 ? "BUSY" : `status 0x${e.status.toString(16)}`;
  if (e.status !== 2) return `${what}: ${status}`;
  const asc = ASC_NAMES[(e.asc << 8) | e.ascq] ?? `ASC 0x${e.asc.toString(16)}/0x${e.ascq.toString(16)}`;
  return `${what}: ${status}, ${SENSE_KEYS[e.senseKey]}, ${asc}`;
}

/** The jobs reported as one: fio's groups with group_reporting (a group's jobs merged), else each job's clones. */
function reportUnits(r: RunReport): { o: FioOptions; jobs: number[]; results: JobResult[] }[] {
  const out: { o: FioOptions; jobs: number[]; results: JobResult[] }[] = [];
  r.jobs.forEach((o, j) => {
    const prev = out.at(-1);
    const results = r.results.filter((x) => x.job === j);
    if (prev && o.groupReporting && prev.o.groupReporting && prev.o.group === o.group) {
      prev.jobs.push(j);
      prev.results.push(...results);
    } else out.push({ o, jobs: [j], results });
  });
  return out;
}

const fmtBs = (o: FioOptions) => (o.bs === o.bsWrite ? `bs=${o.bs}B` : `bs=(R) ${o.bs}B, (W) ${o.bsWrite}B`);

/** The text report of a run: fio-like lines per job (or group) with latency percentiles, then the device's threads. */
export function textReport(r: RunReport): string {
  const lines: string[] = [...r.before];
  const o = r.jobs[0];
  for (const u of reportUnits(r)) {
    const p = u.o;
    const names = u.jobs.map((j) => r.jobs[j].name);
    const clones = u.results.length;
    lines.push(
      `${names.join("+")}: (g=${p.group}): rw=${p.rw}, ${fmtBs(p)}, iodepth=${p.iodepth}, numjobs=${clones}, queues=${u.jobs.reduce((s, j) => s + r.jobs[j].queues, 0)}, workers=${p.workers}, device=${p.device}, backstore=${p.backstoreArg}, block-size=${p.blockSize}, ${fmtRegion(r.regions[u.jobs[0]], r.capacity)}`,
    );
    const errors = u.results.reduce((s, j) => s + j.errors, 0);
    if (errors > 0) {
      const first = u.results.find((j) => j.firstError)?.firstError;
      lines.push(
        `  error: ${errors} I/Os failed, err=${EIO} (Input/output error)${first ? `; the first: ${fmtFirstError(first)}` : ""}. The figures below count only the I/Os that succeeded.`,
      );
    }
    if (p.rampMs > 0) lines.push(`  ramp: ${Math.round(p.rampMs)}ms before counting (--ramp_time)`);
    if (p.rateIops > 0) lines.push(`  rate: at most ${p.rateIops} IOPS per clone (--rate_iops)`);
    for (const d of DIRECTIONS) {
      const s = summarize(u.results, d);
      if (s.ios === 0) continue;
      lines.push(
        `  ${d}: IOPS=${fmtIops(s.iops)}, BW=${fmtBw(s.bw)} (${(s.bw / 1e6).toFixed(1)}MB/s)(${units(s.bytes, 1024, ["B", "KiB", "MiB", "GiB"])}/${Math.round(s.runtimeMs)}msec)`,
      );
      const l = s.lat;
      lines.push(`    lat (nsec): min=${fmtNs(l.minNonZeroValue)}, max=${fmtNs(l.maxValue)}, avg=${fmtNs(l.mean)}, stdev=${fmtNs(l.stdDeviation)}`);
      const pct = (x: number) => fmtNs(l.getValueAtPercentile(x));
      lines.push(`    lat percentiles: p50=${pct(50)}, p90=${pct(90)}, p99=${pct(99)}, p99.9=${pct(99.9)}, p99.99=${pct(99.99)}`);
    }
    lines.push(`  errors: ${errors}`);
    if (p.verify) {
      lines.push(
        `  verify: ${u.results.reduce((s, j) => s + j.verifiedBlocks, 0)} blocks checked, ${u.results.reduce((s, j) => s + j.verifyMismatches, 0)} mismatches`,
      );
    }
  }
  const ignored = [...new Set(r.jobs.map((j) => j.ioengine).filter((e) => e !== undefined))];
  if (ignored.length) lines.push(`  note: --ioengine=${ignored.join(",")} ignored: the guest's virtio-scsi driver and this device are the engine`);
  if (o.guestThreads < r.results.length) {
    lines.push(`  note: ${r.results.length} jobs run on ${o.guestThreads} guest thread${o.guestThreads > 1 ? "s" : ""} (the guest's vCPUs, --guest-threads)`);
  }
  const placed = (cpus: number[][] | undefined, what: string) =>
    cpus ? cpus.map((c, i) => `${what} ${i} on CPU ${c.join(",")}`).join(", ") : `${what}s where the scheduler puts them`;
  lines.push(`  placement: ${placed(o.guestCpus, "guest thread")}; ${placed(o.workerCpus, "vhost worker")} (--cpus_allowed, --worker-cpus)`);
  const busy = busyThreads(o);
  if (busy > platform.cores()) {
    lines.push(
      `  note: ${busy} busy threads (${o.guestThreads} guest, ${o.workers} vhost workers) on ${platform.cores()} cores: threads share cores,` +
        (o.busyPollUs === 0 && o.guestPollUs === 0
          ? " polling is off (threads sleep on their eventfds)"
          : o.busyPollUs === 0
            ? " the vhost workers sleep between kicks while the guest polls"
            : " polling backs off to sleeping") +
        (r.jobs.length === 1 && r.dev.fitting !== undefined ? "; the largest configuration that fits runs right before and after, to compare (below)" : ""),
    );
  }
  const runtimeS = Math.max(...r.results.map((j) => j.elapsedMs)) / 1000;
  for (const w of r.dev.workers) {
    // A browser tells no CPU time per thread: then only the time serving requests.
    const cpu = Number.isFinite(w.user)
      ? `cpu usr=${(w.user / 1000).toFixed(2)}s sys=${(w.system / 1000).toFixed(2)}s (${(((w.user + w.system) / 1000 / runtimeS) * 100).toFixed(0)}% of the run, busy-polling included), `
      : "";
    lines.push(`  vhost worker ${w.id}: ${cpu}serving requests ${((w.busy / 1000 / runtimeS) * 100).toFixed(0)}%`);
  }
  const busyS = r.dev.workers.reduce((s, w) => s + w.busy, 0) / 1000;
  const allIos = r.results.reduce((s, j) => s + totalIos(j), 0);
  if (busyS > 0) lines.push(`  device throughput per busy core: ${fmtIops(allIos / busyS)} IOPS`);
  const guestCpu = r.results.some((j) => j.cpu)
    ? `cpu usr=${(r.dev.guestCpu.user / 1000).toFixed(2)}s sys=${(r.dev.guestCpu.system / 1000).toFixed(2)}s, `
    : "";
  lines.push(`  guest jobs: ${guestCpu}kicks=${r.dev.kicks}`);
  if (r.dev.dirtyLog) lines.push(`  dirty log: ${r.dev.dirtyLog.pages} dirty pages in ${r.dev.dirtyLog.syncs} syncs (4 KiB pages the device wrote)`);
  const io = r.dev.ioThreadsCpu;
  if (io) lines.push(`  I/O threads: cpu usr=${(io.user / 1000).toFixed(2)}s sys=${(io.system / 1000).toFixed(2)}s`);
  const per = cpuPerMio(r);
  if (per)
    lines.push(
      `  cpu per million I/Os (usr+sys): guest jobs ${per.guest.toFixed(2)}s, vhost workers ${per.workers.toFixed(2)}s${per.ioThreads === undefined ? "" : `, I/O threads ${per.ioThreads.toFixed(2)}s`}`,
    );
  for (const n of r.notes) lines.push(`  ${n}`);
  return lines.join("\n");
}

/**
 * CPU seconds (user + system) per million I/Os of the guest jobs, the vhost workers (busy-polling
 * included) and the I/O threads; undefined where the platform tells no CPU time per thread.
 */
function cpuPerMio(r: RunReport): { guest: number; workers: number; ioThreads?: number } | undefined {
  const ios = r.results.reduce((s, j) => s + totalIos(j), 0);
  const workers = r.dev.workers.reduce((s, w) => s + w.user + w.system, 0);
  if (ios === 0 || !r.results.some((j) => j.cpu) || !Number.isFinite(workers)) return undefined;
  const perMio = (ms: number) => ms / 1000 / (ios / 1e6);
  const io = r.dev.ioThreadsCpu;
  return { guest: perMio(r.dev.guestCpu.user + r.dev.guestCpu.system), workers: perMio(workers), ...(io && { ioThreads: perMio(io.user + io.system) }) };
}

/** A ratio to a yardstick, or why none is given. */
const ratio = (run: number, yardstick: number, why: string | undefined) => (why ? why : `this run ${(run / yardstick).toFixed(2)}x of it`);

/** The yardsticks' lines of a run (after its report): the C loop, the fitting configuration, the backstore's own storage. */
export function referenceLines(r: RunReport): string[] {
  const lines: string[] = [];
  const o = r.jobs[0];
  const dev = r.dev;
  const iops = runIops(r.results);
  const bw = r.results.reduce((s, j) => s + DIRECTIONS.reduce((t, d) => t + j[d].bytes, 0), 0) / (Math.max(...r.results.map((j) => j.elapsedMs)) / 1000);
  if (dev.native) {
    const n = dev.native;
    const disk = `, ${fmtBytes(n.diskBytes)} disk`;
    if (n.missing) lines.push(`  C reference (bench/perf-ref/vring_ref.c): not run: ${n.missing}`);
    for (const c of n.runs) {
      const what = c.mode === 2 ? "guest and device threads polling (mode 2)" : "one thread doing both (mode 1)";
      const each = c.iopsEach ? ` ${fmtBracket(c.iopsEach)}` : "";
      lines.push(
        `  C reference (bench/perf-ref/vring_ref.c, same run${disk}): ${what} ${fmtIops(c.iops)} IOPS${each}, ${ratio(iops, c.iops, unsteady(c.windowIops))}`,
      );
    }
    if (n.runs.length)
      lines.push(
        `    memcpy in C (${o.bs}-byte chunks, same run): ${fmtBw(n.runs[0].memcpyBw)}; this run moved ${((bw / n.runs[0].memcpyBw) * 100).toFixed(0)}% of it`,
      );
  }
  if (dev.fitting) {
    const fit = dev.fitting;
    const range: [number, number] = [Math.min(...fit.iopsEach), Math.max(...fit.iopsEach)];
    lines.push(
      `  fitting configuration (${fit.options}, same run): ${fmtIops(fit.iops)} IOPS ${fmtBracket(fit.iopsEach)}, ${ratio(iops, fit.iops, unsteady(range))}`,
    );
  }
  if (dev.references.length) {
    lines.push(`  backstore reference (same ${o.backstore.backstore === "file" ? "file" : "export"}, same region, same run):`);
    for (const ref of dev.references) {
      lines.push(
        ref.iops === undefined
          ? `    ${ref.label}: not run: ${ref.missing}`
          : `    ${ref.label}: ${fmtIops(ref.iops)} IOPS, this run ${(iops / ref.iops).toFixed(2)}x of it`,
      );
    }
  }
  return lines;
}

/** The device side of a run in the JSON report. */
function deviceJson(r: RunReport) {
  const o = r.jobs[0];
  const dev = r.dev;
  const cpu = cpuPerMio(r);
  return {
    queues: r.jobs.reduce((s, j) => s + j.queues, 0),
    cores: platform.cores(),
    busy_threads: busyThreads(o),
    lun_bytes: r.capacity,
    // The CPUs of each guest thread and each vhost worker; null: not pinned.
    placement: { guest_threads: o.guestCpus ?? null, workers: o.workerCpus ?? null },
    workers: dev.workers.map((w) => ({ id: w.id, usr_cpu_ms: w.user, sys_cpu_ms: w.system, busy_ms: Math.round(w.busy) })),
    iops_per_busy_core: (() => {
      const busy = dev.workers.reduce((s, w) => s + w.busy, 0) / 1000;
      const ios = r.results.reduce((s, j) => s + totalIos(j), 0);
      return busy > 0 ? ios / busy : 0;
    })(),
    guest_cpu_ms: dev.guestCpu,
    ...(dev.ioThreadsCpu && { io_threads_cpu_ms: dev.ioThreadsCpu }),
    ...(dev.dirtyLog && { dirty_log: dev.dirtyLog }),
    ...(cpu && {
      cpu_s_per_million_ios: { guest_jobs: cpu.guest, vhost_workers: cpu.workers, ...(cpu.ioThreads !== undefined && { io_threads: cpu.ioThreads }) },
    }),
    kicks: dev.kicks,
    ...(dev.native && {
      native_reference: dev.native.missing
        ? { missing: dev.native.missing }
        : {
            disk_bytes: dev.native.diskBytes,
            ...Object.fromEntries(
              dev.native.runs.flatMap((c) => [
                [`mode${c.mode}_iops`, Math.round(c.iops)],
                ...(c.iopsEach ? [[`mode${c.mode}_iops_before_after`, c.iopsEach.map(Math.round)]] : []),
                [`mode${c.mode}_iops_window_range`, c.windowIops.map(Math.round)],
                [`mode${c.mode}_meaningful`, unsteady(c.windowIops) === undefined],
                ["memcpy_bw_bytes", Math.round(c.memcpyBw)],
              ]),
            ),
          },
    }),
    ...(dev.fitting && {
      fitting_reference: {
        options: dev.fitting.options,
        iops: Math.round(dev.fitting.iops),
        iops_before_after: dev.fitting.iopsEach.map(Math.round),
      },
    }),
    ...(dev.references.length && {
      backstore_reference: Object.fromEntries(dev.references.map((ref) => [ref.key, ref.iops === undefined ? null : Math.round(ref.iops)])),
    }),
    ...(r.before.length + r.notes.length && { notes: [...r.before, ...r.notes] }),
  };
}

/**
 * The runs in fio's JSON (json+ with `plus`): one entry per job clone, or per group with
 * group_reporting, as fio; the device side in a `device` section of our own (an array of one per
 * run when there are several).
 */
export function jsonReport(reports: RunReport[], plus = false): unknown {
  const entries = reports.flatMap((r, run) =>
    reportUnits(r).flatMap((u) =>
      (u.o.groupReporting ? [mergeResults(u.results)] : u.results).map((result) => ({ o: u.o, result, run, errno: result.errors > 0 ? EIO : 0 })),
    ),
  );
  const devices = reports.map(deviceJson);
  return fioJson(entries, plus, { device: devices.length === 1 ? devices[0] : devices });
}
