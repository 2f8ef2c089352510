import type { Histogram } from "hdr-histogram-js";
import { availableParallelism } from "node:os";
import { busyThreads, type FioOptions } from "./options.js";
import type { Reference } from "./backstore-reference.js";
import type { NativeReference } from "./native-reference.js";
import { mergedLatencies, perSecond, type JobResult } from "./job-result.js";
import { fioJson } from "./fio-json.js";

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
function summarize(jobs: JobResult[], dir: "read" | "write"): Summary {
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
const fmtNs = (n: number) => (n >= 10_000_000 ? `${(n / 1e6).toFixed(1)}ms` : n >= 10_000 ? `${(n / 1e3).toFixed(1)}us` : `${Math.round(n)}ns`);

export interface DeviceInfo {
  /** Per vhost worker: CPU time and time spent serving requests (busy), ms. */
  workers: { id: number; user: number; system: number; busy: number }[];
  guestCpu: { user: number; system: number };
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

/** The jobs' IOPS, reads and writes together. */
export function jobsIops(jobs: JobResult[]): number {
  return perSecond(
    jobs.reduce((s, j) => s + j.read.ios + j.write.ios, 0),
    Math.max(...jobs.map((j) => j.elapsedMs)),
  );
}

/** The run in fio's JSON (json+ with `plus`), with the device side in a `device` section of our own. */
export function jsonReport(o: FioOptions, jobs: JobResult[], dev: DeviceInfo, plus = false): unknown {
  return fioJson(o, jobs, plus, {
    device: {
      queues: o.queues,
      cores: availableParallelism(),
      busy_threads: busyThreads(o),
      // The CPUs of each guest thread and each vhost worker; null: not pinned.
      placement: { guest_threads: o.guestCpus ?? null, workers: o.workerCpus ?? null },
      workers: dev.workers.map((w) => ({ id: w.id, usr_cpu_ms: w.user, sys_cpu_ms: w.system, busy_ms: Math.round(w.busy) })),
      iops_per_busy_core: (() => {
        const busy = dev.workers.reduce((s, w) => s + w.busy, 0) / 1000;
        const ios = jobs.reduce((s, j) => s + j.read.ios + j.write.ios, 0);
        return busy > 0 ? ios / busy : 0;
      })(),
      guest_cpu_ms: dev.guestCpu,
      kicks: dev.kicks,
      ...(dev.native && {
        native_reference: dev.native.missing
          ? { missing: dev.native.missing }
          : {
              disk_bytes: dev.native.diskBytes,
              ...Object.fromEntries(
                dev.native.runs.flatMap((r) => [
                  [`mode${r.mode}_iops`, Math.round(r.iops)],
                  ...(r.iopsEach ? [[`mode${r.mode}_iops_before_after`, r.iopsEach.map(Math.round)]] : []),
                  ["memcpy_bw_bytes", Math.round(r.memcpyBw)],
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
        backstore_reference: Object.fromEntries(dev.references.map((r) => [r.key, r.iops === undefined ? null : Math.round(r.iops)])),
      }),
    },
  });
}

/** The text report: fio-like lines per direction with latency percentiles, then the threads' CPU. */
export function textReport(o: FioOptions, jobs: JobResult[], dev: DeviceInfo): string {
  const lines: string[] = [];
  lines.push(
    `vhost-scsi: (g=0): rw=${o.rw}, bs=${o.bs}B, iodepth=${o.iodepth}, numjobs=${o.numjobs}, queues=${o.queues}, workers=${o.workers}, backstore=${o.backstoreArg}, block-size=${o.blockSize}`,
  );
  if (o.guestThreads < o.numjobs) {
    lines.push(`  note: ${o.numjobs} jobs run on ${o.guestThreads} guest thread${o.guestThreads > 1 ? "s" : ""} (the guest's vCPUs, --guest-threads)`);
  }
  const placed = (cpus: number[][] | undefined, what: string) =>
    cpus ? cpus.map((c, i) => `${what} ${i} on CPU ${c.join(",")}`).join(", ") : `${what}s where the scheduler puts them`;
  lines.push(`  placement: ${placed(o.guestCpus, "guest thread")}; ${placed(o.workerCpus, "vhost worker")} (--cpus_allowed, --worker-cpus)`);
  const busy = busyThreads(o);
  if (busy > availableParallelism()) {
    lines.push(
      `  note: ${busy} busy threads (${o.guestThreads} guest, ${o.workers} vhost workers) on ${availableParallelism()} cores: threads share cores,` +
        (o.busyPollUs === 0 && o.guestPollUs === 0
          ? " polling is off (threads sleep on their eventfds)"
          : o.busyPollUs === 0
            ? " the vhost workers sleep between kicks while the guest polls"
            : " polling backs off to sleeping") +
        (dev.fitting ? "; the largest configuration that fits ran right before and after, to compare (below)" : ""),
    );
  }
  const sums = { read: summarize(jobs, "read"), write: summarize(jobs, "write") };
  const iops = sums.read.iops + sums.write.iops;
  const bw = sums.read.bw + sums.write.bw;
  for (const d of ["read", "write"] as const) {
    const s = sums[d];
    if (s.ios === 0) continue;
    lines.push(
      `  ${d}: IOPS=${fmtIops(s.iops)}, BW=${fmtBw(s.bw)} (${(s.bw / 1e6).toFixed(1)}MB/s)(${units(s.bytes, 1024, ["B", "KiB", "MiB", "GiB"])}/${Math.round(s.runtimeMs)}msec)`,
    );
    const l = s.lat;
    lines.push(`    lat (nsec): min=${fmtNs(l.minNonZeroValue)}, max=${fmtNs(l.maxValue)}, avg=${fmtNs(l.mean)}, stdev=${fmtNs(l.stdDeviation)}`);
    const p = (x: number) => fmtNs(l.getValueAtPercentile(x));
    lines.push(`    lat percentiles: p50=${p(50)}, p90=${p(90)}, p99=${p(99)}, p99.9=${p(99.9)}, p99.99=${p(99.99)}`);
  }
  const errors = jobs.reduce((s, j) => s + j.errors, 0);
  lines.push(`  errors: ${errors}`);
  if (o.verify) {
    lines.push(`  verify: ${jobs.reduce((s, j) => s + j.verifiedBlocks, 0)} blocks checked, ${jobs.reduce((s, j) => s + j.verifyMismatches, 0)} mismatches`);
  }
  const runtimeS = sums.read.runtimeMs / 1000;
  for (const w of dev.workers) {
    lines.push(
      `  vhost worker ${w.id}: cpu usr=${(w.user / 1000).toFixed(2)}s sys=${(w.system / 1000).toFixed(2)}s (${(((w.user + w.system) / 1000 / runtimeS) * 100).toFixed(0)}% of the run, busy-polling included), serving requests ${((w.busy / 1000 / runtimeS) * 100).toFixed(0)}%`,
    );
  }
  const busyS = dev.workers.reduce((s, w) => s + w.busy, 0) / 1000;
  const allIos = jobs.reduce((s, j) => s + j.read.ios + j.write.ios, 0);
  if (busyS > 0) lines.push(`  device throughput per busy core: ${fmtIops(allIos / busyS)} IOPS`);
  if (dev.native) {
    const n = dev.native;
    const disk = `, ${fmtBytes(n.diskBytes)} disk`;
    if (n.missing) lines.push(`  C reference (bench/perf-ref/vring_ref.c): not run: ${n.missing}`);
    for (const r of n.runs) {
      const what = r.mode === 2 ? "guest and device threads polling (mode 2)" : "one thread doing both (mode 1)";
      const each = r.iopsEach ? ` ${fmtBracket(r.iopsEach)}` : "";
      lines.push(
        `  C reference (bench/perf-ref/vring_ref.c, same run${disk}): ${what} ${fmtIops(r.iops)} IOPS${each}, this run ${(iops / r.iops).toFixed(2)}x of it`,
      );
    }
    if (n.runs.length)
      lines.push(
        `    memcpy in C (${o.bs}-byte chunks, same run): ${fmtBw(n.runs[0].memcpyBw)}; this run moved ${((bw / n.runs[0].memcpyBw) * 100).toFixed(0)}% of it`,
      );
  }
  if (dev.fitting) {
    const fit = dev.fitting.iops;
    lines.push(
      `  fitting configuration (${dev.fitting.options}, same run): ${fmtIops(fit)} IOPS ${fmtBracket(dev.fitting.iopsEach)}, this run ${(iops / fit).toFixed(2)}x of it`,
    );
  }
  if (dev.references.length) {
    lines.push(`  backstore reference (same ${o.backstore.backstore === "file" ? "file" : "export"}, same run):`);
    for (const r of dev.references) {
      lines.push(
        r.iops === undefined
          ? `    ${r.label}: not run: ${r.missing}`
          : `    ${r.label}: ${fmtIops(r.iops)} IOPS, this run ${(iops / r.iops).toFixed(2)}x of it`,
      );
    }
  }
  lines.push(`  guest jobs: cpu usr=${(dev.guestCpu.user / 1000).toFixed(2)}s sys=${(dev.guestCpu.system / 1000).toFixed(2)}s, kicks=${dev.kicks}`);
  return lines.join("\n");
}
