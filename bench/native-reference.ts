// The native yardstick for the RAM path, run in the same process right after the benchmark:
// bench/perf-ref/vring_ref.c (the request loop of ../shared/perf-ref: split ring, 3-descriptor
// READ(10) chains, a 64 MiB RAM disk), built here with gcc on first use. Mode 2 is a guest
// thread and a device thread both polling, as a guest job and a vhost worker; mode 1 one
// thread doing both. Its memcpy figure (the block size's chunks from random disk offsets, in C)
// is the native bandwidth a large-block run is compared with.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export interface NativeRun {
  mode: 1 | 2;
  iops: number;
  /** memcpy of `bs`-byte chunks in C, bytes/s. */
  memcpyBw: number;
}

export interface NativeReference {
  runs: NativeRun[];
  /** Why it did not run, when it did not. */
  missing?: string;
}

/** The C source, in the repository beside this module's source. */
const SOURCE = fileURLToPath(new URL("../../bench/perf-ref/vring_ref.c", import.meta.url));
/** The C loop's RAM disk, bytes (fixed in vring_ref.c). */
export const NATIVE_DISK_BYTES = 64 << 20;

/** Builds the C loop (once per source change); its path, or why it could not be built. */
function build(): { bin?: string; missing?: string } {
  const dir = fileURLToPath(new URL("../perf-ref/", import.meta.url));
  const bin = join(dir, "vring_ref");
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(SOURCE).mtimeMs) return { bin };
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("gcc", ["-O2", "-o", bin, SOURCE, "-lpthread"], { stdio: ["ignore", "ignore", "pipe"] });
    return { bin };
  } catch (e) {
    return { missing: (e as NodeJS.ErrnoException).code === "ENOENT" ? "gcc is not installed (Debian package gcc)" : `gcc failed: ${(e as Error).message.split("\n")[0]}` };
  }
}

/** The C loop in the given modes at the run's block size and iodepth, `ms` each. */
export function nativeReference(bs: number, iodepth: number, ms: number, modes: (1 | 2)[] = [2]): NativeReference {
  const { bin, missing } = build();
  if (!bin) return { runs: [], missing };
  const runs: NativeRun[] = [];
  for (const mode of modes) {
    try {
      const out = execFileSync(bin, [String(mode), String(ms / 1000), String(bs), String(iodepth)], { encoding: "utf8" });
      const j = JSON.parse(out);
      runs.push({ mode, iops: j.iops, memcpyBw: j.memcpy_MBps * 1e6 });
    } catch (e) {
      return { runs, missing: `vring_ref failed: ${(e as Error).message.split("\n")[0]}` };
    }
  }
  return { runs };
}
