// Which CPUs a thread runs on (sched_setaffinity(2), Linux): what libvirt's vcpupin and
// emulatorpin do for a VM's vCPU threads and its vhost threads. The platform does the pinning
// (taskset(1) on Linux under Node); elsewhere, a browser included, it is refused with a clear error.
import { platform } from "#platform";
export { parseCpuList } from "./cpu-list.js";

/** The CPUs this process may run on; undefined where unknown (not Linux, a browser). */
export const allowedCpus = (): number[] | undefined => platform.processCpus();

/**
 * The CPUs a thread of this process (by thread id; the calling one by default) may run on now;
 * undefined where unknown, or once the thread ended.
 */
export const threadCpus = (tid?: string): number[] | undefined => platform.threadCpus(tid);

/** Whether threads can be pinned here. */
export const canPinThreads = (): boolean => platform.canPinThreads();

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
 * system cannot: not Linux, no taskset, a browser, or a CPU the process may not use (EINVAL of
 * sched_setaffinity, as taskset reports it).
 */
export function pinThread(cpus: readonly number[]): void {
  const problem = cpusProblem(cpus);
  if (problem) throw new RangeError(problem);
  platform.pinThread(cpus);
}
