// The run as fio writes it with --output-format=json or json+ (fio 3.x key layout): one entry
// per job with every data direction fio has (read, write, trim, sync), slat/clat/lat in ns with
// clat percentiles, json+'s clat_ns.bins in fio's bucket scheme, bandwidth and IOPS statistics
// over fio's 500 ms-style samples, iodepth_level and the latency_ns/us/ms distributions. What
// fio has no key for (verify, the device side and the yardsticks) sits in sections of our own
// (`verify` in a job, `device` at the top), which fio's tools ignore.
import type { Histogram } from "hdr-histogram-js";
import type { FioOptions } from "./options.js";
import { VERSION } from "./version.generated.js";
import { DIRECTIONS, latencies, mergedLatencies, perSecond, windows, type JobResult } from "./job-result.js";
import { fioBins, recorded } from "./fio-buckets.js";

/** The percentiles fio reports by default. */
export const FIO_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];

const stats = (h: Histogram) => ({
  min: h.totalCount ? h.minNonZeroValue : 0,
  max: h.totalCount ? h.maxValue : 0,
  mean: h.totalCount ? h.mean : 0,
  stddev: h.totalCount ? h.stdDeviation : 0,
  N: h.totalCount,
});
const NONE = { min: 0, max: 0, mean: 0, stddev: 0, N: 0 };

/** fio's clat object: statistics, and where there are samples the percentiles and (json+) the bins. */
function clat(h: Histogram, plus: boolean) {
  if (h.totalCount === 0) return stats(h);
  const percentile: Record<string, number> = {};
  for (const p of FIO_PERCENTILES) percentile[p.toFixed(6)] = h.getValueAtPercentile(p);
  return { ...stats(h), percentile, ...(plus && { bins: fioBins(h) }) };
}

/** min, max, mean, standard deviation and count of samples. */
function sampleStats(xs: number[]) {
  if (xs.length === 0) return { min: 0, max: 0, mean: 0, dev: 0, n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const dev = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { min: Math.min(...xs), max: Math.max(...xs), mean, dev, n: xs.length };
}

/** What one direction of one job did: I/Os, bytes, latencies, and per window (fio's samples) KiB/s and IOPS. */
interface DirectionRun {
  ios: number;
  bytes: number;
  lat: Histogram;
  runtimeMs: number;
  bwSamples: number[];
  iopsSamples: number[];
}

/** One direction of one job in fio's shape; `groupBw` the whole run's bandwidth in that direction (bw_agg). */
function direction(r: DirectionRun, plus: boolean, groupBw: number) {
  const b = sampleStats(r.bwSamples);
  const i = sampleStats(r.iopsSamples);
  const bwBytes = r.runtimeMs > 0 ? perSecond(r.bytes, r.runtimeMs) : 0;
  return {
    io_bytes: r.bytes,
    io_kbytes: Math.round(r.bytes / 1024),
    bw_bytes: Math.round(bwBytes),
    bw: Math.round(bwBytes / 1024),
    iops: r.runtimeMs > 0 ? perSecond(r.ios, r.runtimeMs) : 0,
    runtime: Math.round(r.runtimeMs),
    total_ios: r.ios,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: NONE,
    clat_ns: clat(r.lat, plus),
    lat_ns: stats(r.lat),
    bw_min: Math.round(b.min),
    bw_max: Math.round(b.max),
    bw_agg: groupBw > 0 ? (bwBytes / groupBw) * 100 : 0,
    bw_mean: b.mean,
    bw_dev: b.dev,
    bw_samples: b.n,
    iops_min: Math.round(i.min),
    iops_max: Math.round(i.max),
    iops_mean: i.mean,
    iops_stddev: i.dev,
    iops_samples: i.n,
  };
}

/** Direction `d` (0 reads, 1 writes, 2 trims) of job `j`. */
function jobDirection(j: JobResult, d: 0 | 1 | 2): DirectionRun {
  const r = j[DIRECTIONS[d]];
  const ws = [...windows(j)];
  return {
    ios: r.ios,
    bytes: r.bytes,
    lat: latencies(r),
    runtimeMs: j.elapsedMs,
    bwSamples: ws.map((w) => perSecond(w.dir[d].bytes / 1024, w.ms)),
    iopsSamples: ws.map((w) => perSecond(w.dir[d].ios, w.ms)),
  };
}

/** fio's iodepth_level: the share of time at each depth level (this benchmark keeps its depth). */
function iodepthLevel(depth: number): Record<string, number> {
  const levels = ["1", "2", "4", "8", "16", "32", ">=64"];
  const at = depth >= 64 ? 6 : Math.floor(Math.log2(depth));
  return Object.fromEntries(levels.map((l, k) => [l, k === at ? 100 : 0]));
}

/**
 * fio's latency_ns / latency_us / latency_ms: the share (%) of I/Os whose latency is at or under
 * each bound and over the one before; latency_ms ends with ">=2000".
 */
function latencyShares(h: Histogram) {
  const keys = [2, 4, 10, 20, 50, 100, 250, 500, 750, 1000];
  const groups = [
    { name: "latency_ns", scale: 1, keys },
    { name: "latency_us", scale: 1e3, keys },
    { name: "latency_ms", scale: 1e6, keys: [...keys, 2000] },
  ];
  const bounds = groups.flatMap((g) => g.keys.map((k) => k * g.scale));
  const counts = new Array<number>(bounds.length + 1).fill(0);
  for (const { value, count } of recorded(h)) {
    let i = bounds.findIndex((b) => value <= b);
    if (i < 0) i = bounds.length;
    counts[i] += count;
  }
  const pct = (n: number) => (h.totalCount ? (n / h.totalCount) * 100 : 0);
  const out: Record<string, Record<string, number>> = {};
  let at = 0;
  for (const g of groups) {
    out[g.name] = {};
    for (const k of g.keys) out[g.name][String(k)] = pct(counts[at++]);
  }
  out.latency_ms[">=2000"] = pct(counts[at]);
  return out;
}

/** A job's options as fio's JSON lists them (strings, fio's names). */
function jobOptions(o: FioOptions) {
  const amount = (a: FioOptions["offset"]) => ("bytes" in a ? String(a.bytes) : `${a.percent}%`);
  return {
    rw: o.rw,
    bs: o.bs === o.bsWrite ? String(o.bs) : `${o.bs},${o.bsWrite}`,
    iodepth: String(o.iodepth),
    numjobs: String(o.numjobs),
    ...(o.size && { size: amount(o.size) }),
    ...("bytes" in o.offset && o.offset.bytes === 0 ? {} : { offset: amount(o.offset) }),
    ...(o.runtimeMs > 0 && { runtime: String(o.runtimeMs / 1000) }),
    ...(o.rampMs > 0 && { ramp_time: String(o.rampMs / 1000) }),
    ...(o.rateIops > 0 && { rate_iops: String(o.rateIops) }),
    rwmixread: String(o.rwmixread),
    ...(o.direct && { direct: "1" }),
    ioengine: `vhost-scsi-${o.engine}`,
    device: o.device,
  };
}

/** One entry of fio's `jobs`: a clone (or a group's clones merged), its job's options, its run, and fio's errno for it (0: none). */
export interface JsonEntry {
  o: FioOptions;
  result: JobResult;
  run: number;
  errno: number;
}

/** The whole document; `plus` adds json+'s bins; `extra` the sections of our own at the top. */
export function fioJson(entries: JsonEntry[], plus: boolean, extra: Record<string, unknown>): unknown {
  const now = Date.now();
  // bw_agg: a job's share of its group's bandwidth in each direction.
  const groupBw = (group: number, run: number, d: number) =>
    entries.filter((e) => e.o.group === group && e.run === run).reduce((s, e) => s + perSecond(e.result[DIRECTIONS[d]].bytes, e.result.elapsedMs), 0);
  return {
    "fio version": `vhost-scsi-wasm-${VERSION}`,
    timestamp: Math.floor(now / 1000),
    timestamp_ms: now,
    time: new Date(now).toString(),
    "global options": jobOptions(entries[0].o),
    jobs: entries.map(({ o, result: j, run, errno }) => {
      return {
        jobname: o.name,
        groupid: o.group,
        // fio's error is the first error's errno; the count and what the device answered are ours.
        error: errno,
        total_err: j.errors,
        first_error: errno,
        ...(j.firstError && { first_error_detail: j.firstError }),
        eta: 0,
        elapsed: Math.round(j.elapsedMs / 1000),
        "job options": { name: o.name, ...jobOptions(o) },
        run,
        read: direction(jobDirection(j, 0), plus, groupBw(o.group, run, 0)),
        write: direction(jobDirection(j, 1), plus, groupBw(o.group, run, 1)),
        trim: direction(jobDirection(j, 2), plus, groupBw(o.group, run, 2)),
        sync: { total_ios: 0, lat_ns: NONE },
        job_runtime: Math.round(j.elapsedMs),
        usr_cpu: j.cpu ? (j.cpu.user / j.elapsedMs) * 100 : 0,
        sys_cpu: j.cpu ? (j.cpu.system / j.elapsedMs) * 100 : 0,
        ctx: 0,
        majf: 0,
        minf: 0,
        iodepth_level: iodepthLevel(o.iodepth),
        ...latencyShares(mergedLatencies([j.read, j.write, j.trim])),
        latency_depth: o.iodepth,
        latency_target: 0,
        latency_percentile: 100,
        latency_window: 0,
        verify: { blocks: j.verifiedBlocks, mismatches: j.verifyMismatches },
        kicks: j.kicks,
      };
    }),
    ...extra,
  };
}
