// `npm run bench:browser`: the same benchmark job in Node and in Chromium, side by side in one
// run, rounds alternating (the machine's state moves; each round compares runs seconds apart):
// the RAM job of npm start, and OPFS 4 KiB random reads and writes beside the bare
// sync-access-handle loop on the same file in the same page and beside the Node file backstore
// on a file on the same disk (the Chromium profile lives in the same temporary folder); then the
// Linux guest's boot and I/O in the page and in Node.
// Needs Debian's chromium; prints a table, writes nothing.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "./demo-server.mjs";
import { CHROMIUM, launchChromium } from "./chromium.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
if (!CHROMIUM) {
  console.error("bench:browser needs Chromium (Debian package chromium)");
  process.exit(1);
}
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const RUNTIME = Number(process.env.RUNTIME ?? 3);
const dir = mkdtempSync(join(tmpdir(), "browser-bench-"));
const server = await serve({ port: 0 });
const ctx = await launchChromium(join(dir, "profile"));

/** The job in Node: the benchmark's JSON, read and write IOPS together, and the yardsticks it printed. */
function nodeRun(args) {
  const out = execFileSync(process.execPath, [join(root, "dist/bench/fio.js"), ...args, "--json"], { encoding: "utf8", maxBuffer: 64 << 20 });
  const j = JSON.parse(out);
  return { iops: j.jobs.reduce((s, x) => s + x.read.iops + x.write.iops, 0), refs: j.device.backstore_reference ?? {} };
}

try {
  const page = await ctx.newPage();
  await page.goto(server.url);
  await page.waitForFunction(() => window.demo?.ready, null, { timeout: 30_000 });
  const browserRun = (form) => page.evaluate((f) => window.demo.runBenchmark(f).then((r) => ({ iops: r.iops, loop: r.loop })), form);
  const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}k`);
  console.log(
    `cores: ${await page.evaluate(() => navigator.hardwareConcurrency)}, Chromium ${ctx.browser()?.version() ?? ""}, Node ${process.version}, ${RUNTIME} s per run, ${ROUNDS} rounds\n`,
  );

  console.log("RAM disk, 4 KiB randread, iodepth 32, 1 queue, 64 MiB (npm start's job): Chromium vs Node");
  const ram = [];
  for (let r = 0; r < ROUNDS; r++) {
    const node = nodeRun(["--rw=randread", "--bs=4k", "--iodepth=32", `--runtime=${RUNTIME}`, "--size=64m", "--no-reference"]);
    const web = await browserRun({ backstore: "ram", rw: "randread", bs: "4k", iodepth: 32, queues: 1, runtime: RUNTIME, verify: false });
    ram.push(web.iops / node.iops);
    console.log(`  round ${r + 1}: Chromium ${fmt(web.iops)} IOPS, Node ${fmt(node.iops)} IOPS, ratio ${(web.iops / node.iops).toFixed(2)}`);
  }
  console.log(`  mean ratio ${(ram.reduce((a, b) => a + b, 0) / ram.length).toFixed(2)}\n`);

  for (const rw of ["randread", "randwrite"]) {
    console.log(`OPFS file 64 MiB, 4 KiB ${rw}, iodepth 32: the backstore vs the bare loop (same page), and the Node file backstore on ${tmpdir()}`);
    const file = join(dir, "disk.img");
    for (let r = 0; r < ROUNDS; r++) {
      const web = await browserRun({ backstore: "opfs", rw, bs: "4k", iodepth: 32, queues: 1, runtime: RUNTIME, verify: false });
      // Laid out as the page lays its file out: sparse, 64 MiB.
      writeFileSync(file, "");
      truncateSync(file, 64 << 20);
      const node = nodeRun([`--filename=${file}`, `--rw=${rw}`, "--bs=4k", "--iodepth=32", `--runtime=${RUNTIME}`, "--size=64m", "--reference=fs"]);
      const loop = web.loop?.iops;
      console.log(
        `  round ${r + 1}: OPFS backstore ${fmt(web.iops)} IOPS, bare loop ${loop ? fmt(loop) : `not run (${web.loop?.missing})`}${loop ? `, ratio ${(web.iops / loop).toFixed(2)}` : ""}; Node file backstore ${fmt(node.iops)}, Node fs loop ${node.refs.node_sync_loop ? fmt(node.refs.node_sync_loop) : "not run"}`,
      );
    }
    console.log("");
  }
  console.log(
    "The Linux guest (v86, 128 MiB): boot and 4 KiB O_DIRECT I/O as the guest measures it, in Chromium (LUN 0 an OPFS file) and in Node (npm run guest: LUN 1 a file)",
  );
  await page.evaluate(() => window.demo.eraseGuestDisk());
  const web = await page.evaluate(() => window.demo.bootGuest().then(async (b) => (await window.demo.stopGuest(), b)));
  const { runGuest } = await import("./guest.mjs");
  const node = await runGuest({});
  console.log(
    `  Chromium: booted in ${(web.bootMs / 1000).toFixed(1)} s; ${Object.entries(web.io)
      .map(([k, v]) => `${k} ${v} IOPS`)
      .join(", ")}`,
  );
  console.log(
    `  Node:     booted in ${(node.bootMs / 1000).toFixed(1)} s; ${Object.entries(node.io)
      .filter(([k]) => k.startsWith("virtio"))
      .map(([k, v]) => `${k} ${v} IOPS`)
      .join(", ")}`,
  );
} finally {
  await ctx.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
