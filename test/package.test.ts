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
    const { stdout } = await exec("npx", ["--no-install", "vhost-scsi-bench", "--size=16m"], { cwd: dir, timeout: 60_000 });
    expect(stdout).toMatch(/read: IOPS=\d/);
    expect(stdout).toContain("errors: 0");
    const help = await exec("npx", ["--no-install", "vhost-scsi-bench", "--help"], {
      cwd: dir,
      timeout: 60_000,
      env: { ...process.env, npm_lifecycle_event: "" },
    });
    expect(help.stdout).toMatch(/^usage: vhost-scsi-bench \[options\]/);
  });

  it("ships its license, changelog, and everything the README links to; nothing refers to a source map it does not ship", () => {
    for (const f of ["LICENSE", "CHANGELOG.md", "README.md", "esm-only.cjs"]) expect(files).toContain(f);
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const targets = [...readme.matchAll(/\]\(([^)#\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z]+:/.test(t));
    expect(targets.length).toBeGreaterThan(0);
    for (const t of targets) expect(files, t).toContain(t);
    // Files the README names in code spans that are in the repository's docs/ and examples/.
    for (const t of new Set([...readme.matchAll(/`((?:docs|examples)\/[\w.-]+\.(?:md|mjs|svg))`/g)].map((m) => m[1]))) expect(files, t).toContain(t);
    const installed = join(dir, "node_modules", "vhost-scsi-wasm");
    for (const f of files.filter((x) => /\.(js|mjs|cjs)$/.test(x))) {
      const m = /sourceMappingURL=(\S+)/.exec(readFileSync(join(installed, f), "utf8"));
      if (m) expect(files, `${f} refers to ${m[1]}`).toContain(join(f, "..", m[1]));
    }
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    expect(pkg.license).toBe("MIT");
    expect(readFileSync(join(root, "LICENSE"), "utf8")).toMatch(/^MIT License/);
  });

  it("require() of an ES-module-only package says so, and how to load it", async () => {
    writeFileSync(join(dir, "req.cjs"), 'try { require("vhost-scsi-wasm"); } catch (e) { console.log(e.message); }');
    const { stdout } = await exec(process.execPath, ["req.cjs"], { cwd: dir, timeout: 60_000 });
    expect(stdout).toContain("vhost-scsi-wasm is an ES module package");
    expect(stdout).toContain('await import("vhost-scsi-wasm")');
  });

  it("documents every entry point of its exports (typedoc's entry points)", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    const typedoc = JSON.parse(readFileSync(join(root, "typedoc.json"), "utf8"));
    const entries = Object.values(pkg.exports as Record<string, string | { types?: string }>)
      .flatMap((e) => (typeof e === "string" ? [] : [e.types!]))
      .map((t) => t.replace(/^\.\/dist\//, "").replace(/\.d\.ts$/, ".ts"));
    expect([...typedoc.entryPoints].sort()).toEqual(entries.sort());
  });

  it("the README's first library example works as written", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const code = /## Library use\s+```js\n([\s\S]*?)```/.exec(readme)![1];
    writeFileSync(join(dir, "example.mjs"), code);
    const { stdout } = await exec(process.execPath, ["example.mjs"], { cwd: dir, timeout: 60_000 });
    expect(stdout.trim()).toBe("0 0 4096");
  });

  it("keeps the raw interface, the wire constants and encoders, and the test harnesses off the root (at most 160 names)", async () => {
    const script = `
      const root = await import("vhost-scsi-wasm");
      const abi = await import("vhost-scsi-wasm/abi");
      const wire = await import("vhost-scsi-wasm/wire");
      const testing = await import("vhost-scsi-wasm/testing");
      console.log(JSON.stringify({ root: Object.keys(root), abi: Object.keys(abi), wire: Object.keys(wire), testing: Object.keys(testing) }));`;
    writeFileSync(join(dir, "entries.mjs"), script);
    const { stdout } = await exec(process.execPath, ["entries.mjs"], { cwd: dir, timeout: 60_000 });
    const e = JSON.parse(stdout) as Record<string, string[]>;
    for (const name of ["createTestbed", "VhostProcess", "VhostScsiDevice", "VirtioScsiDriver", "TargetRegistry", "VhostError", "commandRetryingUA"])
      expect(e.root).toContain(name);
    for (const name of ["MockSplitQueue", "RingTestbed", "VringServer", "VHOST_SCSI_WEIGHT", "nodeFileOps", "dataplaneModule", "DRAIN_SIGNAL"])
      expect(e.root).not.toContain(name);
    for (const name of ["dataplaneModule", "createDataplane", "DRAIN_SIGNAL", "VQ_ERR_TRANSLATE"]) expect(e.abi).toContain(name);
    for (const name of ["RingTestbed", "MockSplitQueue", "DeviceQueue"]) expect(e.testing).toContain(name);
    for (const name of ["VHOST_SET_MEM_TABLE", "VIRTIO_SCSI_S_OK", "VRING_DESC_F_NEXT", "VIRTIO_CONFIG_S_DRIVER_OK", "read16", "decodeSense", "SENSE_KEYS"]) {
      expect(e.wire).toContain(name);
      expect(e.root).not.toContain(name);
    }
    expect(e.root.length).toBeLessThanOrEqual(160);
  });
});
