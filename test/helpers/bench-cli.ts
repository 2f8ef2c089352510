// Runs the benchmark's command line (dist/bench/fio.js) as a user does, and tells whether a
// system tool the tests compare with is installed.
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

/** Whether `cmd` is on the PATH. */
export const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;

const fio = fileURLToPath(new URL("../../dist/bench/fio.js", import.meta.url));

/** The benchmark run with `args`: its exit code and output. */
export async function runBench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [fio, ...args], { timeout: 60_000 });
    return { code: 0, ...r };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}
