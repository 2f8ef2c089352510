// The yardsticks for a file backstore, run on the same file in the same run as the benchmark:
// a plain one-thread loop of fs.readSync/writeSync into a SharedArrayBuffer view (what Node
// itself can do), and fio with its psync engine (what the machine can do), when fio is there.
import { closeSync, constants, openSync, readSync, writeSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { FioOptions } from "./options.js";

export interface FileReference {
  /** IOPS of a one-thread synchronous fs loop doing the same I/O pattern. */
  nodeLoopIops: number;
  /** IOPS of `fio --ioengine=psync --numjobs=1` on the same file, or undefined without fio. */
  fioIops: number | undefined;
  /** Why fio did not run, when it did not. */
  fioMissing?: string;
}

/** A deterministic pseudo-random block sequence, as the benchmark's jobs draw them. */
function blockAt(i: number, blocks: number, random: boolean): number {
  return (random ? Math.imul(i + 1, 2654435761) >>> 0 : i) % blocks;
}

/** The same reads or writes as the run, by one thread in a loop of synchronous fs calls. */
function nodeLoop(path: string, o: FioOptions, ms: number): number {
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
    return n / ((performance.now() - t0) / 1000);
  } finally {
    closeSync(fd);
  }
}

/** fio's psync engine, one job, the same pattern on the same file; undefined when fio is not installed. */
function fio(path: string, o: FioOptions, ms: number): { iops?: number; missing?: string } {
  const rw = o.rw === "randrw" ? "randread" : o.rw === "rw" ? "read" : o.rw;
  try {
    const out = execFileSync(
      "fio",
      ["--name=ref", `--filename=${path}`, "--ioengine=psync", `--rw=${rw}`, `--bs=${o.bs}`, `--size=${o.size}`, `--runtime=${Math.max(1, Math.round(ms / 1000))}`, "--time_based", "--numjobs=1", "--output-format=json"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
    );
    const job = JSON.parse(out).jobs[0];
    return { iops: rw.includes("write") ? job.write.iops : job.read.iops };
  } catch (e) {
    return { missing: (e as NodeJS.ErrnoException).code === "ENOENT" ? "fio is not installed (Debian package fio)" : `fio failed: ${(e as Error).message.split("\n")[0]}` };
  }
}

/** Both yardsticks on `path` with the run's block size, region and read/write pattern. */
export function fileReference(path: string, o: FioOptions, ms = 1000): FileReference {
  const f = fio(path, o, ms);
  return { nodeLoopIops: nodeLoop(path, o, ms), fioIops: f.iops, fioMissing: f.missing };
}
