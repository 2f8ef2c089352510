import { describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = (name: string) => promisify(execFile)(process.execPath, [fileURLToPath(new URL(`../examples/${name}`, import.meta.url))], { timeout: 60_000 });

describe("examples", () => {
  it("library.mjs: library import in one thread", async () => {
    const { stdout } = await run("library.mjs");
    expect(stdout).toMatch(/lun 0: LIO-ORG vhost-wasm-ram 131072 x 512 B, naa\.6[0-9a-f]{31}/);
    expect(stdout).toMatch(/lun 1: LIO-ORG vhost-wasm-null 262144 x 4096 B/);
    expect(stdout).toContain("write status 0, read status 0, data matches");
  });

  it("worker-embedding.mjs: device workers in threads, the guest driver in another thread", async () => {
    const { stdout } = await run("worker-embedding.mjs");
    expect(stdout).toContain("guest thread: 512 requests on 2 queues, 0 mismatches");
    const m = /queue 2 served (\d+), queue 3 served (\d+)/.exec(stdout)!;
    // 512 I/Os, plus the first command twice: once taking the power-on unit attention, once again.
    expect(Number(m[1]) + Number(m[2])).toBe(514);
  });
});
