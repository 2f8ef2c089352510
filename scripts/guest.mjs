// `npm run guest`: boots Debian's Linux in v86 with a virtio-scsi disk served by this data plane
// (LUN 0 a RAM disk, LUN 1 a file, LUN 2 plugged in and out while the guest runs) and a
// virtio-blk disk (a RAM disk) beside v86's own IDE disk, runs the workload of
// scripts/guest/init.sh and reports what the guest saw.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { guestImages } from "./guest-image.mjs";
import { guestV86Options } from "./guest/v86-options.mjs";

const dist = new URL("../dist/src/", import.meta.url);

/** v86's options for the guest in Node: the cached images as buffers, `memoryMiB` of RAM, a 16 MiB IDE disk. */
export function v86Options(images, { memoryMiB = 128, cmdline = "" } = {}) {
  return guestV86Options((name) => ({ buffer: new Uint8Array(readFileSync(join(dirname(images.bios), name))).buffer }), {
    memoryMiB,
    cmdline,
    hdaBytes: 16 << 20,
  });
}

/** Calls onLine with each line the guest prints on its serial console. */
export function serialLines(emulator, onLine) {
  let line = "";
  emulator.add_listener("serial0-output-byte", (byte) => {
    const ch = String.fromCharCode(byte);
    if (ch === "\n") {
      void onLine(line.replace(/\r$/, ""));
      line = "";
    } else line += ch;
  });
}

/**
 * Boots the guest and runs the workload. Resolves with the results ({ name: "ok" | reason }),
 * the console lines, boot and total times, and the guest-side I/O rates; `log` gets each
 * console line as it comes.
 */
export async function runGuest({ log = () => {}, timeoutMs = 150_000, memoryMiB = 128 } = {}) {
  const images = guestImages({ log: (m) => log(`[images] ${m}`) });
  const { createV86WithSharedMemory, attachVirtioScsi, attachVirtioBlk } = await import(new URL("v86/index.js", dist).href);
  const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-guest-"));
  const t0 = performance.now();
  const { emulator, shm, cpu } = await createV86WithSharedMemory({
    v86: v86Options(images, { memoryMiB }),
    // The device heap holds the RAM LUNs (64 MiB, and 16 MiB plugged in later), the virtio-blk RAM disk (64 MiB) and the rest.
    deviceBytes: (64 + 16 + 64 + 16) << 20,
  });
  const disk = await attachVirtioScsi(
    { emulator, shm, cpu },
    {
      luns: [
        { backstore: "ram", size: 64 << 20, serial: "RAM0" },
        { backstore: "file", path: join(dir, "lun1.img"), size: 32 << 20 },
      ],
    },
  );
  const blk = await attachVirtioBlk({ emulator, shm, cpu }, { backstore: { backstore: "ram", size: 64 << 20 }, disk: { serial: "BLK0" } });
  const lines = [];
  const results = {};
  const io = {};
  let bootMs;
  let finish;
  const done = new Promise((r) => (finish = r));
  const onLine = async (l) => {
    lines.push(l);
    log(l);
    const m = /^=== (\S+) ?(.*)$/.exec(l);
    if (!m) return;
    const [, what, rest] = m;
    if (what === "BOOTED") bootMs = performance.now() - t0;
    else if (what === "RESULT") {
      const [name, ...why] = rest.split(" ");
      results[name] = why[0] === "ok" ? "ok" : why.slice(1).join(" ") || "FAIL";
    } else if (what === "IO") {
      // "IO <disk> <read|write> <count>x<4k|1m> seconds <t0> <t1>": 4 KiB as IOPS, 1 MiB as MiB/s.
      const [diskName, dir2, count, , a, b] = rest.split(" ");
      const [n, size] = count.split("x");
      const rate = Number(n) / (Number(b) - Number(a));
      if (size === "1m") io[`${diskName} ${dir2} 1MiB`] = Math.round(rate * 10) / 10;
      else io[`${diskName} ${dir2}`] = Math.round(rate);
    } else if (what === "HOTPLUG?") await disk.tpg.addLun(2, { backstore: "ram", size: 16 << 20 });
    else if (what === "UNPLUG?") await disk.tpg.removeLun(2);
    else if (what === "DONE") finish();
  };
  serialLines(emulator, onLine);
  emulator.run();
  const timer = setTimeout(() => finish("timeout"), timeoutMs);
  const outcome = await done;
  clearTimeout(timer);
  const totalMs = performance.now() - t0;
  const queue = disk.device.vhost.vringStatus(2);
  const deviceBusyMs = disk.deviceBusyMs() + blk.deviceBusyMs();
  const blkRequests = Number(blk.device.vhost.vringStatus(0)?.stats.completed ?? 0);
  await emulator.stop();
  await disk.close();
  await blk.close();
  await emulator.destroy();
  rmSync(dir, { recursive: true, force: true });
  return {
    results,
    lines,
    bootMs,
    totalMs,
    io,
    deviceBusyMs,
    timedOut: outcome === "timeout",
    requests: queue ? Number(queue.stats.completed) : undefined,
    blkRequests,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quiet = process.argv.includes("--quiet");
  try {
    const r = await runGuest({ log: (l) => !quiet && console.log(`  ${l}`) });
    console.log(`\nboot to the workload: ${(r.bootMs / 1000).toFixed(1)} s; whole run ${(r.totalMs / 1000).toFixed(1)} s${r.timedOut ? " (TIMED OUT)" : ""}`);
    for (const [name, v] of Object.entries(r.results)) console.log(`  ${v === "ok" ? "ok  " : "FAIL"} ${name}${v === "ok" ? "" : `: ${v}`}`);
    for (const [k, v] of Object.entries(r.io)) {
      const bulk = k.endsWith(" 1MiB");
      console.log(`  guest ${bulk ? k.slice(0, -5) : k}: ${v} ${bulk ? "MiB/s (1 MiB sequential" : "IOPS (4 KiB"}, O_DIRECT, as the guest measured it)`);
    }
    console.log(
      `  device: ${(r.deviceBusyMs / 1000).toFixed(2)} s serving requests in a ${(r.totalMs / 1000).toFixed(1)} s run (${((100 * r.deviceBusyMs) / r.totalMs).toFixed(1)} %); the emulated CPU bounds guest I/O`,
    );
    const failed = r.timedOut || Object.values(r.results).some((v) => v !== "ok");
    process.exit(failed ? 1 : 0);
  } catch (e) {
    console.error(`guest: ${e.message}`);
    process.exit(1);
  }
}
