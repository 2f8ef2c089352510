// Runs the benchmark's command line (dist/bench/fio.js) as a user does, and tells whether a
// system tool the tests compare with is installed.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Whether `cmd` is on the PATH. */
export const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

export const BENCH = fileURLToPath(new URL("../../dist/bench/fio.js", import.meta.url));

export interface BenchRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The benchmark run with `args` (and standard input, environment, working folder, a signal after some ms): its exit and output. */
export function runBenchWith(
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; interruptAfterMs?: number; timeoutMs?: number } = {},
): Promise<BenchRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BENCH, ...args], { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.stdin.end(opts.input ?? "");
    const kill = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 90_000);
    const interrupt = opts.interruptAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGINT"), opts.interruptAfterMs);
    child.on("close", (code, signal) => {
      clearTimeout(kill);
      clearTimeout(interrupt);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The benchmark run with `args`: its exit code and output. */
export const runBench = (...args: string[]) => runBenchWith(args);
