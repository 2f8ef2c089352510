// Running a yardstick's program (the C loop, fio): built where the user may write, bounded in
// time, stoppable with Ctrl-C, and never fatal. Whatever goes wrong becomes the one-line reason
// the report gives after "not run:".
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** A program's output, or why it gave none. */
export type ToolResult = { stdout: string; missing?: undefined } | { stdout?: undefined; missing: string };

/** Stops every yardstick still running (Ctrl-C). */
export const yardsticksStopped = new AbortController();

/** Runs `cmd args` for at most timeoutMs; `pkg` names the Debian package that has it. */
export function runTool(cmd: string, args: readonly string[], timeoutMs: number, pkg: string): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { encoding: "utf8", timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 << 20, signal: yardsticksStopped.signal },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
        if (e.code === "ENOENT") return resolve({ missing: `${cmd} is not installed (Debian package ${pkg})` });
        if (e.name === "AbortError") return resolve({ missing: "interrupted" });
        if (e.killed) return resolve({ missing: `${cmd} did not finish within ${Math.round(timeoutMs / 1000)} s` });
        const why = `${stderr ?? ""}`.trim().split("\n").at(-1) || e.message.split("\n")[0];
        resolve({ missing: `${cmd} failed: ${why}` });
      },
    );
  });
}

/** Where built yardsticks are kept: $XDG_CACHE_HOME or ~/.cache, under the package's name (the package's own folder may be read-only). */
function cacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "vhost-scsi-wasm");
}

/**
 * Compiles `source` with `cc args` into the cache (once per source text: the file name carries
 * its hash); the binary's path, or why it could not be built.
 */
export async function buildTool(cc: string, pkg: string, source: string, name: string, args: readonly string[]): Promise<{ bin?: string; missing?: string }> {
  let text: Buffer;
  try {
    text = readFileSync(source);
  } catch (e) {
    return { missing: `its source ${source} cannot be read: ${(e as Error).message}` };
  }
  const dir = cacheDir();
  const bin = join(dir, `${name}-${createHash("sha256").update(text).update(args.join(" ")).digest("hex").slice(0, 16)}`);
  if (existsSync(bin)) return { bin };
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    return { missing: `cannot create the cache folder ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  // Built under a name of its own, then renamed: runs that build at once each see a whole binary.
  const tmp = `${bin}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const r = await runTool(cc, [...args, "-o", tmp, source], 120_000, pkg);
  if (r.missing !== undefined) {
    rmSync(tmp, { force: true });
    return { missing: r.missing };
  }
  try {
    renameSync(tmp, bin);
  } catch (e) {
    rmSync(tmp, { force: true });
    return { missing: `cannot write ${bin}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  return { bin };
}
