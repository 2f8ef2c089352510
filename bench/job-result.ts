// What a benchmark job thread reports back to the main thread when it finishes, and the
// per-window timeline that the fio logs, fio's bw/iops statistics and the plot are drawn from.
import hdr, { type Histogram } from "hdr-histogram-js";

/** A latency histogram (ns) as every part of the benchmark keeps them: 3 significant digits. */
export const latencyHistogram = (): Histogram => hdr.build({ numberOfSignificantValueDigits: 3 });

interface DirResult {
  ios: number;
  bytes: number;
  /** The latency histogram, compressed for the trip between threads (see latencies()). */
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
  /**
   * Per window of --log_avg_msec (when logs or a plot were asked for): the window's end in ms
   * since the job started, then for reads and writes the I/Os, bytes and latency sum (ns) in it.
   */
  timeline: number[];
}

/** Numbers per window in JobResult.timeline. */
export const TIMELINE_STRIDE = 7;

/** One direction's I/Os, bytes and latency sum (ns) within a window. */
export interface WindowCounts {
  ios: number;
  bytes: number;
  latNs: number;
}

/** A window of the timeline: its end and length (ms since the job started), and reads and writes in it. */
export interface Window {
  endMs: number;
  ms: number;
  dir: [WindowCounts, WindowCounts];
}

/** The job's timeline windows, in order; empty windows (zero length) are left out. */
export function* windows(job: JobResult): Generator<Window> {
  const t = job.timeline;
  for (let k = 0, prev = 0; k < t.length; k += TIMELINE_STRIDE) {
    const ms = t[k] - prev;
    prev = t[k];
    if (ms <= 0) continue;
    const at = (d: number) => ({ ios: t[k + 1 + 3 * d], bytes: t[k + 2 + 3 * d], latNs: t[k + 3 + 3 * d] });
    yield { endMs: t[k], ms, dir: [at(0), at(1)] };
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

/** Events per second from a count over `ms` milliseconds. */
export const perSecond = (n: number, ms: number) => (n * 1000) / ms;
