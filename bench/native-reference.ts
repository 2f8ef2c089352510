// The native yardstick for the RAM path, run in the same process right before and right after
// the benchmark (the machine's state moves within minutes; the mean of the two brackets it):
// bench/perf-ref/vring_ref.c (the request loop of ../shared/perf-ref: split ring, 3-descriptor
// READ(10) chains, a RAM disk of the run's region size), built here with gcc on first use.
// Mode 2 is a guest thread and a device thread both polling, as a guest job and a vhost
// worker; mode 1 one thread doing both. Its memcpy figure (the block size's chunks from random
// disk offsets, in C) is the native bandwidth a large-block run is compared with.
// bench/perf-ref/wasm_ref.c is the same loop (mode 1) compiled to wasm32 with clang-14, run here
// on V8 over a shared memory: what WebAssembly itself costs, without cross-thread traffic.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

interface NativeRun {
  mode: 1 | 2;
  iops: number;
  /** memcpy of `bs`-byte chunks in C, bytes/s. */
  memcpyBw: number;
  /** Run before and after a benchmark (bracket()): each run's IOPS; iops and memcpyBw are their means. */
  iopsEach?: [number, number];
}

export interface NativeReference {
  runs: NativeRun[];
  /** The C loop's RAM disk, bytes. */
  diskBytes: number;
  /** Why it did not run, when it did not. */
  missing?: string;
}

/** The C source, in the repository beside this module's source. */
const SOURCE = fileURLToPath(new URL("../../bench/perf-ref/vring_ref.c", import.meta.url));
/** The C loop's RAM disk when vring_ref.c is not given one, bytes. */
const NATIVE_DISK_BYTES = 64 << 20;

const WASM_SOURCE = fileURLToPath(new URL("../../bench/perf-ref/wasm_ref.c", import.meta.url));

/** Compiles `source` to `out` with `cc args` (once per source change); the output's path, or why it could not be built. */
function build(cc: string, pkg: string, source: string, out: string, args: string[]): { bin?: string; missing?: string } {
  const dir = fileURLToPath(new URL("../perf-ref/", import.meta.url));
  const bin = join(dir, out);
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(source).mtimeMs) return { bin };
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync(cc, [...args, "-o", bin, source], { stdio: ["ignore", "ignore", "pipe"] });
    return { bin };
  } catch (e) {
    return {
      missing:
        (e as NodeJS.ErrnoException).code === "ENOENT"
          ? `${cc} is not installed (Debian package ${pkg})`
          : `${cc} failed: ${(e as Error).message.split("\n")[0]}`,
    };
  }
}

/** The C loop in the given modes at the run's block size, iodepth and region size (`diskBytes`), `ms` each. */
export function nativeReference(bs: number, iodepth: number, ms: number, modes: (1 | 2)[] = [2], diskBytes = NATIVE_DISK_BYTES): NativeReference {
  const { bin, missing } = build("gcc", "gcc", SOURCE, "vring_ref", ["-O2", "-pthread"]);
  if (!bin) return { runs: [], diskBytes, missing };
  const runs: NativeRun[] = [];
  for (const mode of modes) {
    try {
      const args = [String(mode), String(ms / 1000), String(bs), String(iodepth), String(diskBytes)];
      const out = execFileSync(bin, args, { encoding: "utf8" });
      const j = JSON.parse(out);
      runs.push({ mode, iops: j.iops, memcpyBw: j.memcpy_MBps * 1e6 });
    } catch (e) {
      return { runs, diskBytes, missing: `vring_ref failed: ${(e as Error).message.split("\n")[0]}` };
    }
  }
  return { runs, diskBytes };
}

/** One reference from a run before and one after: each mode's mean, with both runs' IOPS. */
export function bracket(before: NativeReference, after: NativeReference): NativeReference {
  const runs = before.runs.flatMap((b): NativeRun[] => {
    const a = after.runs.find((r) => r.mode === b.mode);
    return a ? [{ mode: b.mode, iops: (b.iops + a.iops) / 2, memcpyBw: (b.memcpyBw + a.memcpyBw) / 2, iopsEach: [b.iops, a.iops] }] : [];
  });
  const missing = before.missing ?? after.missing;
  return missing ? { runs, diskBytes: before.diskBytes, missing } : { runs, diskBytes: before.diskBytes };
}

/** The C loop compiled to wasm32 (mode 1: guest and device in one thread), run here for `ms`: its IOPS, or why not. */
export function wasmReference(bs: number, iodepth: number, ms: number): { iops?: number; missing?: string } {
  const args = [
    "--target=wasm32",
    "-O2",
    "-nostdlib",
    "-mbulk-memory",
    "-matomics",
    "-Wl,--no-entry",
    "-Wl,--import-memory",
    "-Wl,--shared-memory",
    "-Wl,--max-memory=268435456",
    "-Wl,--export-dynamic",
  ];
  const { bin, missing } = build("clang-14", "clang-14 and lld-14", WASM_SOURCE, "wasm_ref.wasm", args);
  if (!bin) return { missing };
  const memory = new WebAssembly.Memory({ initial: 4096, maximum: 4096, shared: true });
  const e = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(bin)), { env: { memory } }).exports as {
    init(base: number, bs: number, depth: number): void;
    run(rounds: number): number;
    errs(): number;
  };
  e.init(16 << 20, bs, iodepth);
  let done = 0;
  const t0 = performance.now();
  let t1 = t0;
  do {
    done += e.run(64);
    t1 = performance.now();
  } while (t1 - t0 < ms);
  if (e.errs() !== 0) return { missing: `wasm_ref reported ${e.errs()} errors` };
  return { iops: done / ((t1 - t0) / 1000) };
}
