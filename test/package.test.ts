// The package as users get it: `npm pack`, installed into a fresh project. It ships what users
// run (the library, the data plane builds, the benchmark behind its `vhost-scsi-bench` bin) and
// nothing of the build's leftovers, and the README's first library example works as written.
import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const exec = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const npm = (args: string[], cwd: string) => exec("npm", args, { cwd, timeout: 240_000, maxBuffer: 16 << 20 });
let dir = "";
let files: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pkg-"));
  // The suite built dist/ already; prepack would rebuild it under the other test files' feet.
  const { stdout } = await npm(["pack", "--ignore-scripts", "--json", "--pack-destination", dir], root);
  const [pack] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  files = pack.files.map((f) => f.path);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "user", version: "1.0.0", type: "module", private: true }));
  await npm(["install", "--prefer-offline", "--no-audit", "--no-fund", join(dir, pack.filename)], dir);
}, 300_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the package as users get it", () => {
  it("ships the library, the data plane builds and the benchmark, not the build's leftovers", () => {
    for (const f of [
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "dist/src/testing/index.js",
      "dist/src/abi.js",
      "dist/dataplane.wasm",
      "dist/bench/fio.js",
      "bench/perf-ref/vring_ref.c",
    ])
      expect(files).toContain(f);
    for (const f of files) expect(f).not.toMatch(/\.tsbuildinfo$|\.wat$|\.map$|^dist\/bindings\/|^dist\/test\/|^dist\/bench\/(micro|ring|pingpong)\./);
  });

  it("runs the benchmark through its bin, as npx does", async () => {
    const { stdout } = await exec("npx", ["--no-install", "vhost-scsi-bench", "--runtime=300ms"], { cwd: dir, timeout: 60_000 });
    expect(stdout).toMatch(/read: IOPS=\d/);
    expect(stdout).toContain("errors: 0");
  });

  it("the README's first library example works as written", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const code = /## Library use\s+```js\n([\s\S]*?)```/.exec(readme)![1];
    writeFileSync(join(dir, "example.mjs"), code);
    const { stdout } = await exec(process.execPath, ["example.mjs"], { cwd: dir, timeout: 60_000 });
    expect(stdout.trim()).toBe("0 0 4096");
  });

  it("keeps the raw interface and the test harnesses off the root", async () => {
    const script = `
      const root = await import("vhost-scsi-wasm");
      const abi = await import("vhost-scsi-wasm/abi");
      const testing = await import("vhost-scsi-wasm/testing");
      console.log(JSON.stringify({ root: Object.keys(root), abi: Object.keys(abi), testing: Object.keys(testing) }));`;
    writeFileSync(join(dir, "entries.mjs"), script);
    const { stdout } = await exec(process.execPath, ["entries.mjs"], { cwd: dir, timeout: 60_000 });
    const e = JSON.parse(stdout) as Record<string, string[]>;
    for (const name of ["createTestbed", "VhostProcess", "VhostScsiDevice", "VirtioScsiDriver", "TargetRegistry", "VhostError", "commandRetryingUA"])
      expect(e.root).toContain(name);
    for (const name of ["MockSplitQueue", "RingTestbed", "ScsiVringServer", "VHOST_SCSI_WEIGHT", "nodeFileOps", "dataplaneModule", "DRAIN_SIGNAL"])
      expect(e.root).not.toContain(name);
    for (const name of ["dataplaneModule", "createDataplane", "DRAIN_SIGNAL", "VQ_ERR_TRANSLATE"]) expect(e.abi).toContain(name);
    for (const name of ["RingTestbed", "MockSplitQueue", "DeviceQueue"]) expect(e.testing).toContain(name);
  });
});
