// What a benchmark job thread reports back to the main thread when it finishes, and the
// per-window timeline that the fio logs, fio's bw/iops statistics and the plot are drawn from.
import hdr, { type Histogram } from "hdr-histogram-js";
import type { FirstError } from "./guest-engine.js";

/** A latency histogram (ns) as every part of the benchmark keeps them: 3 significant digits. */
export const latencyHistogram = (): Histogram => hdr.build({ numberOfSignificantValueDigits: 3 });

interface DirResult {
  ios: number;
  bytes: number;
  /** The latency histogram, compressed for the trip between threads (see latencies()). */
  histogram: string;
}

/** The data directions, in fio's order (its logs' direction numbers, its JSON's keys). */
export const DIRECTIONS = ["read", "write", "trim"] as const;
export type Direction = (typeof DIRECTIONS)[number];

export interface JobResult {
  /** The clone's number among all jobs of the run (fio's job number, from 0), and its job's name. */
  index: number;
  name: string;
  /** Its job among the run's (RunReport.jobs). */
  job: number;
  read: DirResult;
  write: DirResult;
  trim: DirResult;
  /** Requests that failed (not counted in the directions), and the first of them. */
  errors: number;
  firstError: FirstError | undefined;
  verifyMismatches: number;
  verifiedBlocks: number;
  elapsedMs: number;
  cpu: { user: number; system: number } | undefined;
  kicks: number;
  /**
   * Per window of --log_avg_msec (when logs or a plot were asked for): the window's end in ms
   * since the job started, then for reads, writes and trims the I/Os, bytes and latency sum (ns) in it.
   */
  timeline: number[];
}

/** Numbers per window in JobResult.timeline. */
export const TIMELINE_STRIDE = 10;

/** One direction's I/Os, bytes and latency sum (ns) within a window. */
export interface WindowCounts {
  ios: number;
  bytes: number;
  latNs: number;
}

/** A window of the timeline: its end and length (ms since the job started), and reads, writes and trims in it. */
export interface Window {
  endMs: number;
  ms: number;
  dir: [WindowCounts, WindowCounts, WindowCounts];
}

/** The job's timeline windows, in order; empty windows (zero length) are left out. */
export function* windows(job: JobResult): Generator<Window> {
  const t = job.timeline;
  for (let k = 0, prev = 0; k < t.length; k += TIMELINE_STRIDE) {
    const ms = t[k] - prev;
    prev = t[k];
    if (ms <= 0) continue;
    const at = (d: number) => ({ ios: t[k + 1 + 3 * d], bytes: t[k + 2 + 3 * d], latNs: t[k + 3 + 3 * d] });
    yield { endMs: t[k], ms, dir: [at(0), at(1), at(2)] };
  }
}

const decoded = new WeakMap<DirResult, Histogram>();

/** One direction's latencies of one job, decoded once however many reports read them. */
export function latencies(d: DirResult): Histogram {
  let h = decoded.get(d);
  if (!h) decoded.set(d, (h = hdr.decodeFromCompressedBase64(d.histogram)));
  return h;
}

/** The latencies of several directions or jobs together (fio's group reporting). */
export function mergedLatencies(ds: readonly DirResult[]): Histogram {
  const h = latencyHistogram();
  for (const d of ds) h.add(latencies(d));
  return h;
}

/**
 * Several clones' results as one (fio's group_reporting): counts and latencies summed, the run
 * the longest of theirs, the timelines added window by window.
 */
export function mergeResults(rs: readonly JobResult[]): JobResult {
  const dir = (d: Direction): DirResult => ({
    ios: rs.reduce((s, r) => s + r[d].ios, 0),
    bytes: rs.reduce((s, r) => s + r[d].bytes, 0),
    histogram: hdr.encodeIntoCompressedBase64(mergedLatencies(rs.map((r) => r[d]))),
  });
  const sum = (f: (r: JobResult) => number) => rs.reduce((s, r) => s + f(r), 0);
  const longest = rs.reduce((a, b) => (b.timeline.length > a.timeline.length ? b : a));
  const timeline = longest.timeline.map((v, k) => (k % TIMELINE_STRIDE === 0 ? v : rs.reduce((s, r) => s + (r.timeline[k] ?? 0), 0)));
  const cpus = rs.filter((r) => r.cpu);
  return {
    ...rs[0],
    read: dir("read"),
    write: dir("write"),
    trim: dir("trim"),
    errors: sum((r) => r.errors),
    firstError: rs.find((r) => r.firstError)?.firstError,
    verifyMismatches: sum((r) => r.verifyMismatches),
    verifiedBlocks: sum((r) => r.verifiedBlocks),
    elapsedMs: Math.max(...rs.map((r) => r.elapsedMs)),
    cpu: cpus.length ? { user: cpus.reduce((s, r) => s + r.cpu!.user, 0), system: cpus.reduce((s, r) => s + r.cpu!.system, 0) } : undefined,
    kicks: sum((r) => r.kicks),
    timeline,
  };
}

/** I/Os done in every direction. */
export const totalIos = (j: JobResult) => j.read.ios + j.write.ios + j.trim.ios;

/** Events per second from a count over `ms` milliseconds. */
export const perSecond = (n: number, ms: number) => (n * 1000) / ms;
