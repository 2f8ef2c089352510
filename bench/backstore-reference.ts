// The yardsticks for a backstore served outside the data plane, run on the same storage in the
// same run as the benchmark. A file: a plain one-thread loop of fs.readSync/writeSync into a
// SharedArrayBuffer view (what Node itself can do), and fio with its psync engine (what the
// machine can do). An NBD export: fio with its nbd engine (libnbd) at the run's iodepth.
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { FioOptions } from "./options.js";

/** One yardstick: its IOPS, or why it did not run. */
export interface Reference {
  /** What it is, as the report says it: `fio --ioengine=psync, one job`. */
  label: string;
  /** Its name in the JSON report. */
  key: string;
  iops?: number;
  missing?: string;
}

/** A deterministic pseudo-random block sequence, as the benchmark's jobs draw them. */
function blockAt(i: number, blocks: number, random: boolean): number {
  return (random ? Math.imul(i + 1, 2654435761) >>> 0 : i) % blocks;
}

/** The same reads or writes as the run, by one thread in a loop of synchronous fs calls. */
function nodeLoop(path: string, o: FioOptions, ms: number): Reference {
  const write = o.rw === "write" || o.rw === "randwrite";
  const random = o.rw.startsWith("rand");
  const fd = openSync(path, write ? constants.O_RDWR : constants.O_RDONLY);
  try {
    const view = new Uint8Array(new SharedArrayBuffer(o.bs * 32), 0, o.bs);
    const blocks = Math.floor(o.size / o.bs);
    const t0 = performance.now();
    let n = 0;
    for (;;) {
      const pos = blockAt(n, blocks, random) * o.bs;
      if (write) writeSync(fd, view, 0, o.bs, pos);
      else readSync(fd, view, 0, o.bs, pos);
      n++;
      if ((n & 255) === 0 && performance.now() - t0 > ms) break;
    }
    return { label: "one-thread fs sync loop", key: "node_sync_loop", iops: n / ((performance.now() - t0) / 1000) };
  } finally {
    closeSync(fd);
  }
}

/** fio with `engine` args, one job, the run's pattern; the IOPS of both directions, or why it did not run. */
function fio(label: string, key: string, engine: string[], o: FioOptions, ms: number): Reference {
  const rw = o.rw === "randrw" ? "randread" : o.rw === "rw" ? "read" : o.rw;
  try {
    const out = execFileSync(
      "fio",
      [
        "--name=ref",
        ...engine,
        `--rw=${rw}`,
        `--bs=${o.bs}`,
        `--size=${o.size}`,
        `--runtime=${Math.max(1, Math.round(ms / 1000))}`,
        "--time_based",
        "--numjobs=1",
        "--output-format=json",
      ],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
    );
    // Some engines print a line of their own before the JSON (nbd: "fio: connected to NBD server").
    const job = JSON.parse(out.slice(out.indexOf("{"))).jobs[0];
    if (job.error) return { label, key, missing: `fio failed: error ${job.error}` };
    return { label, key, iops: job.read.iops + job.write.iops };
  } catch (e) {
    return {
      label,
      key,
      missing:
        (e as NodeJS.ErrnoException).code === "ENOENT" ? "fio is not installed (Debian package fio)" : `fio failed: ${(e as Error).message.split("\n")[0]}`,
    };
  }
}

/** The yardsticks for the run's backstore (none for ram and null), with its block size, region and pattern. */
export function backstoreReference(o: FioOptions, ms = 1000): Reference[] {
  const b = o.backstore;
  if (b.backstore === "file") {
    const path = b.path as string;
    return [nodeLoop(path, o, ms), fio("fio --ioengine=psync, one job", "fio_psync", ["--ioengine=psync", `--filename=${path}`], o, ms)];
  }
  if (b.backstore === "nbd") {
    return [
      fio(`fio --ioengine=nbd, iodepth ${o.iodepth}, one job`, "fio_nbd", ["--ioengine=nbd", `--uri=${b.uri as string}`, `--iodepth=${o.iodepth}`], o, ms),
    ];
  }
  return [];
}
