// The native yardstick for the RAM path, run in the same process right before and right after
// the benchmark (the machine's state moves within minutes; the mean of the two brackets it):
// bench/perf-ref/vring_ref.c (the request loop of ../shared/perf-ref: split ring, 3-descriptor
// READ(10) chains, a RAM disk of the run's region size), built with gcc on first use into the
// user's cache folder (yardstick-tool.ts).
// Mode 2 is a guest thread and a device thread both polling, as a guest job and a vhost
// worker; mode 1 one thread doing both. Its memcpy figure (the block size's chunks from random
// disk offsets, in C) is the native bandwidth a large-block run is compared with.
// bench/perf-ref/wasm_ref.c is the same loop (mode 1) compiled to wasm32 with clang-14, run here
// on V8 over a shared memory: what WebAssembly itself costs, without cross-thread traffic.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { buildTool, runTool } from "./yardstick-tool.js";

interface NativeRun {
  mode: 1 | 2;
  iops: number;
  /** The slowest and the fastest of its time windows (of both runs, when bracketed), IOPS: how steady it ran. */
  windowIops: [number, number];
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

/** The C source, in the package beside this module's folder (bench/perf-ref/ ships with it). */
const SOURCE = fileURLToPath(new URL("../../bench/perf-ref/vring_ref.c", import.meta.url));
/** The C loop's RAM disk when vring_ref.c is not given one, bytes. */
const NATIVE_DISK_BYTES = 64 << 20;

const WASM_SOURCE = fileURLToPath(new URL("../../bench/perf-ref/wasm_ref.c", import.meta.url));

/** The C loop in the given modes at the run's block size, iodepth and region size (`diskBytes`), `ms` each. */
export async function nativeReference(
  bs: number,
  iodepth: number,
  ms: number,
  modes: (1 | 2)[] = [2],
  diskBytes = NATIVE_DISK_BYTES,
): Promise<NativeReference> {
  const { bin, missing } = await buildTool("gcc", "gcc", SOURCE, "vring_ref", ["-O2", "-pthread"]);
  if (!bin) return { runs: [], diskBytes, missing };
  const runs: NativeRun[] = [];
  for (const mode of modes) {
    const args = [String(mode), String(ms / 1000), String(bs), String(iodepth), String(diskBytes)];
    // Filling the disk and the memcpy second come on top of the run itself.
    const r = await runTool(bin, args, 2 * ms + 30_000 + diskBytes / 2 ** 20, "gcc");
    if (r.missing !== undefined) return { runs, diskBytes, missing: r.missing.replace(bin, "vring_ref") };
    try {
      const j = JSON.parse(r.stdout);
      runs.push({ mode, iops: j.iops, windowIops: [j.iops_window_min, j.iops_window_max], memcpyBw: j.memcpy_MBps * 1e6 });
    } catch {
      return { runs, diskBytes, missing: `vring_ref printed no result (${r.stdout.trim().slice(0, 80)})` };
    }
  }
  return { runs, diskBytes };
}

/** One reference from a run before and one after: each mode's mean, with both runs' IOPS. */
export function bracket(before: NativeReference, after: NativeReference): NativeReference {
  const runs = before.runs.flatMap((b): NativeRun[] => {
    const a = after.runs.find((r) => r.mode === b.mode);
    if (!a) return [];
    const windowIops: [number, number] = [Math.min(b.windowIops[0], a.windowIops[0]), Math.max(b.windowIops[1], a.windowIops[1])];
    return [{ mode: b.mode, iops: (b.iops + a.iops) / 2, windowIops, memcpyBw: (b.memcpyBw + a.memcpyBw) / 2, iopsEach: [b.iops, a.iops] }];
  });
  const missing = before.missing ?? after.missing;
  return missing ? { runs, diskBytes: before.diskBytes, missing } : { runs, diskBytes: before.diskBytes };
}

/** The C loop compiled to wasm32 (mode 1: guest and device in one thread), run here for `ms`: its IOPS, or why not. */
export async function wasmReference(bs: number, iodepth: number, ms: number): Promise<{ iops?: number; missing?: string }> {
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
  const { bin, missing } = await buildTool("clang-14", "clang-14 and lld-14", WASM_SOURCE, "wasm_ref.wasm", args);
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
