import { readFileSync } from "node:fs";

/** CPU time of the calling thread in ms (user, system), from /proc/thread-self/stat; undefined off Linux. */
export function threadCpuMs(): { user: number; system: number } | undefined {
  try {
    const stat = readFileSync("/proc/thread-self/stat", "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const tick = 1000 / 100; // USER_HZ is 100 on Linux
    return { user: Number(f[11]) * tick, system: Number(f[12]) * tick };
  } catch {
    return undefined;
  }
}
