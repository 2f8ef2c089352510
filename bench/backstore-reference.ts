// The yardsticks for a backstore served outside the data plane, run on the same storage in the
// same run as the benchmark, after it (and after its LUN let go of the storage: a server that
// takes one client at a time serves the yardstick then). A file: a plain one-thread loop of
// fs.readSync/writeSync into a shared-memory view (what Node itself can do), and fio with its
// psync engine (what the machine can do). An NBD export: fio with its nbd engine (libnbd) at
// the run's iodepth. fio runs with a time limit; whatever stops it is a "not run" reason.
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import type { FioOptions, ReferenceKind } from "./options.js";
import { runTool } from "./yardstick-tool.js";

/** One yardstick: its IOPS, or why it did not run. */
export interface Reference {
  /** What it is, as the report says it: `fio --ioengine=psync, one job`. */
  label: string;
  /** Its name in the JSON report. */
  key: string;
  iops?: number;
  missing?: string;
}

/**
 * The blocks of a loop, in order or drawn as the benchmark's jobs draw them (xorshift32,
 * assembly/guest/engine.ts). A multiplicative hash of the count, taken modulo a power of two,
 * walks the blocks at a fixed stride instead, and the page cache serves that pattern at half the
 * system time of random blocks (a 64 MiB tmpfs file: 0.57 against 1.03 µs per 4 KiB pread): the
 * loop must not be measured on an easier pattern than the run.
 */
function blockStream(blocks: number, random: boolean): () => number {
  let n = 0;
  let x = 0x9e3779b9;
  return () => {
    if (!random) return n++ % blocks;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % blocks;
  };
}

/** The run's pattern as one direction: fio's rw for the yardstick. */
function yardstickRw(o: FioOptions): string {
  return o.rw === "randrw" ? "randread" : o.rw === "rw" ? "read" : o.rw;
}

/** The region a job addressed: its first byte and length. */
export interface Region {
  offset: number;
  bytes: number;
}

/** The same reads or writes as the run, by one thread in a loop of synchronous fs calls. */
function nodeLoop(path: string, o: FioOptions, region: Region, ms: number): Reference {
  const label = "one-thread fs sync loop";
  const key = "node_sync_loop";
  const rw = yardstickRw(o);
  if (rw.endsWith("trim")) return { label, key, missing: "the fs module has no discard" };
  const write = rw.endsWith("write");
  let fd: number;
  try {
    fd = openSync(path, (write ? constants.O_RDWR : constants.O_RDONLY) | (o.direct ? constants.O_DIRECT : 0));
  } catch (e) {
    return { label, key, missing: `cannot open ${path}: ${(e as NodeJS.ErrnoException).code}` };
  }
  try {
    const bs = write ? o.bsWrite : o.bs;
    // A WebAssembly memory starts on a page: its views are aligned as O_DIRECT needs.
    const view = new Uint8Array(new WebAssembly.Memory({ initial: Math.ceil(bs / 65536), maximum: Math.ceil(bs / 65536), shared: true }).buffer, 0, bs);
    const blocks = Math.floor(region.bytes / bs);
    const block = blockStream(blocks, rw.startsWith("rand"));
    const t0 = performance.now();
    let n = 0;
    for (;;) {
      const pos = region.offset + block() * bs;
      if (write) writeSync(fd, view, 0, bs, pos);
      else readSync(fd, view, 0, bs, pos);
      n++;
      if ((n & 255) === 0 && performance.now() - t0 > ms) break;
    }
    return { label, key, iops: n / ((performance.now() - t0) / 1000) };
  } catch (e) {
    return { label, key, missing: `${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  } finally {
    closeSync(fd);
  }
}

/** fio with `engine` args, one job, the run's pattern and region; the IOPS of both directions, or why it did not run. */
async function fio(label: string, key: string, engine: string[], o: FioOptions, region: Region, ms: number): Promise<Reference> {
  const seconds = Math.max(1, Math.round(ms / 1000));
  const r = await runTool(
    "fio",
    [
      "--name=ref",
      ...engine,
      `--rw=${yardstickRw(o)}`,
      `--bs=${o.bs},${o.bsWrite},${o.bs}`,
      `--offset=${region.offset}`,
      `--size=${region.bytes}`,
      `--runtime=${seconds}`,
      "--time_based",
      "--numjobs=1",
      "--output-format=json",
    ],
    seconds * 1000 + 20_000,
    "fio",
  );
  if (r.missing !== undefined) return { label, key, missing: r.missing };
  try {
    // Some engines print a line of their own before the JSON (nbd: "fio: connected to NBD server").
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))).jobs[0];
    if (job.error) return { label, key, missing: `fio failed: error ${job.error}` };
    return { label, key, iops: job.read.iops + job.write.iops + job.trim.iops };
  } catch {
    return { label, key, missing: "fio printed no JSON" };
  }
}

/** The yardsticks for the run's backstore (none for ram and null) that `kinds` asks for, on the job's region. */
export async function backstoreReference(o: FioOptions, region: Region, kinds: ReadonlySet<ReferenceKind>, ms = 1000): Promise<Reference[]> {
  const b = o.backstore;
  const out: Reference[] = [];
  if (b.backstore === "file") {
    const path = b.path as string;
    if (kinds.has("fs")) out.push(nodeLoop(path, o, region, ms));
    // --invalidate=0: the page cache as the run left it. fio drops the file's cached pages before
    // it starts by default, which on a file of a disk's filesystem measured the disk (18k IOPS)
    // against a run served from the cache (420k).
    if (kinds.has("fio"))
      out.push(
        await fio(
          "fio --ioengine=psync, one job",
          "fio_psync",
          ["--ioengine=psync", `--filename=${path}`, `--direct=${o.direct ? 1 : 0}`, "--invalidate=0"],
          o,
          region,
          ms,
        ),
      );
  }
  if (b.backstore === "nbd" && kinds.has("fio")) {
    out.push(
      await fio(
        `fio --ioengine=nbd, iodepth ${o.iodepth}, one job`,
        "fio_nbd",
        ["--ioengine=nbd", `--uri=${b.uri as string}`, `--iodepth=${o.iodepth}`],
        o,
        region,
        ms,
      ),
    );
  }
  return out;
}
