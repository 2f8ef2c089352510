// Which CPUs a thread runs on (sched_setaffinity(2), Linux): what libvirt's vcpupin and
// emulatorpin do for a VM's vCPU threads and its vhost threads. Node has no binding for the
// system call, so a thread is pinned by its thread id through taskset(1) (util-linux, on every
// Linux system); elsewhere pinning is refused with a clear error.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";

/** A CPU list as taskset(1), fio's cpus_allowed and /proc show it: "0-3,6". */
export function parseCpuList(text: string): number[] {
  const cpus = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || hi < lo || hi > 4095) throw new RangeError(`'${text}' is not a CPU list (e.g. 0-3,6)`);
    for (let c = lo; c <= hi; c++) cpus.add(c);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** Cpus_allowed_list of a /proc status file; undefined off Linux. */
function cpusAllowed(status: string): number[] | undefined {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(status, "utf8"));
    return m ? parseCpuList(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The CPUs this process may run on; undefined off Linux. */
export const allowedCpus = (): number[] | undefined => cpusAllowed("/proc/self/status");

/**
 * The CPUs a thread of this process (by thread id; the calling one by default) may run on now;
 * undefined off Linux, or once the thread ended.
 */
export const threadCpus = (tid?: string): number[] | undefined => cpusAllowed(tid === undefined ? "/proc/thread-self/status" : `/proc/self/task/${tid}/status`);

let pinnable: boolean | undefined;

/** Whether threads can be pinned here: Linux, with taskset(1) installed (asked once). */
export function canPinThreads(): boolean {
  pinnable ??= allowedCpus() !== undefined && spawnSync("taskset", ["-V"], { stdio: "ignore" }).status === 0;
  return pinnable;
}

/** Why a thread cannot be pinned to `cpus` (none given, or one this process may not run on); undefined when it can. */
export function cpusProblem(cpus: readonly number[]): string | undefined {
  if (cpus.length === 0) return "pinning a thread needs at least one CPU";
  const allowed = allowedCpus();
  const bad = allowed ? cpus.filter((c) => !allowed.includes(c)) : [];
  if (bad.length) return `CPU ${bad.join(",")} is not one this process may run on (${allowed!.join(",")})`;
  return undefined;
}

/**
 * Pins the calling thread (any thread: the main one or a worker) to `cpus`. Throws when the
 * system cannot: not Linux, no taskset, or a CPU the process may not use (EINVAL of
 * sched_setaffinity, as taskset reports it).
 */
export function pinThread(cpus: readonly number[]): void {
  const problem = cpusProblem(cpus);
  if (problem) throw new RangeError(problem);
  let tid: string;
  try {
    tid = readlinkSync("/proc/thread-self").split("/")[2];
  } catch {
    throw new Error("pinning a thread to CPUs needs Linux (sched_setaffinity)");
  }
  try {
    execFileSync("taskset", ["-p", "-c", cpus.join(","), tid], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    if (err.code === "ENOENT") throw new Error("pinning a thread to CPUs needs taskset(1) (util-linux)");
    throw new Error(`cannot pin thread ${tid} to CPUs ${cpus.join(",")}: ${err.stderr?.toString().trim() || String(e)}`);
  }
}
