// The browser demo (`npm run demo`): the benchmark of `npm start` run in the page, on a RAM disk
// or a disk in the Origin Private File System, and a Linux guest in v86 booting from a
// virtio-scsi disk kept in the OPFS, so that what it writes is there after a reload. The page
// also offers both to scripts as window.demo (the browser tests drive it that way).
import { preloadWasm } from "../src/browser.js";
import { platform } from "#platform";
import { compiledModule } from "../src/sys/compiled-module.js";
import { createV86WithSharedMemory, attachVirtioScsi, type V86Emulator, type V86VirtioScsi } from "../src/v86/browser.js";
import { parseCommandLine } from "../bench/options.js";
import { reportOf, runJobs, StopSignal, type Rate } from "../bench/run.js";
import { fmtIops, jsonReport, runIops, textReport } from "../bench/report.js";
import { plotSvg } from "../bench/plot.js";
import type { OpfsLoopInit } from "../bench/opfs-reference.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The benchmark's options as the form gives them, in the command line's words. */
export interface BenchForm {
  backstore: "ram" | "opfs";
  rw: string;
  bs: string;
  iodepth: number;
  queues: number;
  runtime: number;
  verify: boolean;
}

/** The OPFS file the benchmark uses, and its size. */
const BENCH_FILE = "bench/disk.img";
const BENCH_SIZE = "64m";
const BENCH_BYTES = 64 << 20;

/**
 * Lays the benchmark's OPFS file out at its size when it is not there or smaller (a job that
 * only reads needs something to read, as fio lays out a job's file): what it did, or nothing.
 */
async function layOutBenchFile(): Promise<string | undefined> {
  const root = await navigator.storage.getDirectory();
  const [dir, name] = BENCH_FILE.split("/");
  const fh = await (await root.getDirectoryHandle(dir, { create: true })).getFileHandle(name, { create: true });
  if ((await fh.getFile()).size >= BENCH_BYTES) return undefined;
  const w = await fh.createWritable({ keepExistingData: true });
  await w.truncate(BENCH_BYTES);
  await w.close();
  return `Laying out IO file opfs:${BENCH_FILE} (${BENCH_SIZE}, sparse)`;
}

function argsOf(f: BenchForm): string[] {
  return [
    `--rw=${f.rw}`,
    `--bs=${f.bs}`,
    `--iodepth=${f.iodepth}`,
    `--queues=${f.queues}`,
    `--numjobs=${f.queues}`,
    `--runtime=${f.runtime}`,
    ...(f.backstore === "opfs" ? [`--backstore=opfs:${BENCH_FILE}`, `--size=${BENCH_SIZE}`] : ["--size=64m"]),
    ...(f.verify ? ["--verify"] : []),
  ];
}

/** A line chart of IOPS over time on a canvas, drawn again with each sample. */
class RateChart {
  private readonly samples: Rate[] = [];
  constructor(private readonly canvas: HTMLCanvasElement) {}
  reset(): void {
    this.samples.length = 0;
    this.draw();
  }
  add(r: Rate): void {
    this.samples.push(r);
    this.draw();
  }
  private draw(): void {
    const c = this.canvas.getContext("2d")!;
    const { width: w, height: h } = this.canvas;
    c.clearRect(0, 0, w, h);
    c.strokeStyle = "#ccc";
    c.strokeRect(0.5, 0.5, w - 1, h - 1);
    if (this.samples.length === 0) return;
    const total = (s: Rate) => s.read + s.write;
    const peak = Math.max(1, ...this.samples.map(total)) * 1.1;
    const tMax = Math.max(1, ...this.samples.map((s) => s.seconds));
    c.fillStyle = "#444";
    c.font = "12px sans-serif";
    c.fillText(`${fmtIops(peak / 1.1)} IOPS peak`, 8, 16);
    for (const [key, color] of [
      ["read", "#1f77b4"],
      ["write", "#d62728"],
    ] as const) {
      if (!this.samples.some((s) => s[key] > 0)) continue;
      c.strokeStyle = color;
      c.lineWidth = 2;
      c.beginPath();
      this.samples.forEach((s, i) => {
        const x = (s.seconds / tMax) * (w - 20) + 10;
        const y = h - 10 - (s[key] / peak) * (h - 30);
        if (i === 0) c.moveTo(x, y);
        else c.lineTo(x, y);
      });
      c.stroke();
    }
  }
}

/** Offers `text` as a file to download. */
function download(name: string, type: string, text: string): void {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** The bare sync-handle loop on the run's file and region (bench/opfs-reference.ts): its IOPS, or why not. */
function opfsLoop(init: OpfsLoopInit): Promise<{ iops?: number; missing?: string }> {
  // The demo runs from the browser bundle, where every thread's module is a file beside this one.
  const t = platform.startThread(compiledModule(new URL("./opfs-reference.ts", import.meta.url)), init);
  return new Promise((resolve) => {
    t.onMessage((m) => {
      resolve(m as { iops?: number; missing?: string });
      void t.terminate();
    });
    t.onError((e) => resolve({ missing: e.message }));
  });
}

let running: StopSignal | undefined;

/**
 * Runs the benchmark with the form's options: the report (the same text and fio JSON as
 * `npm start`), and for an OPFS run the bare loop on the same file right after.
 */
async function runBenchmark(
  f: BenchForm,
  onRate: (r: Rate) => void = () => {},
): Promise<{ text: string; json: unknown; svg: string; iops: number; loop?: { iops?: number; missing?: string } }> {
  const cl = parseCommandLine(argsOf(f));
  const jobs = cl.runs[0];
  const stop = (running = new StopSignal());
  try {
    const laidOut = f.backstore === "opfs" ? await layOutBenchFile() : undefined;
    const outcome = await runJobs(jobs, { plot: true, stop, progress: (_, r) => onRate(r) });
    const report = reportOf(jobs, outcome, [...(laidOut ? [laidOut] : []), ...outcome.before]);
    const iops = runIops(outcome.jobs);
    let text = textReport(report);
    let loop: { iops?: number; missing?: string } | undefined;
    const o = jobs[0];
    if (f.backstore === "opfs" && !outcome.jobs.some((j) => j.errors > 0)) {
      const write = o.rw === "write" || o.rw === "randwrite";
      loop = await opfsLoop({
        path: BENCH_FILE,
        bs: o.bs,
        write,
        random: o.rw.startsWith("rand"),
        offset: outcome.regions[0].offset,
        bytes: outcome.regions[0].bytes,
        ms: 1000,
      });
      text += `\n  backstore reference (same file, same region, same page):\n    one-thread sync-access-handle loop: ${loop.iops === undefined ? `not run: ${loop.missing}` : `${fmtIops(loop.iops)} IOPS, this run ${(iops / loop.iops).toFixed(2)}x of it`}`;
    }
    return { text, json: jsonReport([report], true), svg: plotSvg([report]), iops, loop };
  } finally {
    running = undefined;
  }
}

/** The Linux guest: v86 with the demo's images, LUN 0 a 96 MiB disk in the OPFS (a 64 MiB filesystem, the rest for raw I/O). */
const GUEST_DISK = "guest/disk.img";
let guest: { emulator: V86Emulator; disk: V86VirtioScsi } | undefined;

/** What a boot of the guest said: the file it wrote or found (and its checksum), how long the boot took, its I/O rates (4 KiB O_DIRECT IOPS). */
export interface GuestBoot {
  wrote?: string;
  found?: string;
  boot: number;
  bootMs: number;
  readyMs: number;
  io: Record<string, number>;
}

async function bootGuest(onLine: (l: string) => void = () => {}): Promise<GuestBoot> {
  if (guest) throw new Error("the guest runs already");
  const t0 = performance.now();
  const url = (f: string) => ({ url: `/guest/${f}` });
  const { emulator, shm, cpu } = await createV86WithSharedMemory({
    v86Base: "/v86/",
    v86: {
      bios: url("bios.bin"),
      vga_bios: url("vgabios-stdvga.bin"),
      bzimage: url("vmlinuz"),
      initrd: url("initramfs.cpio.gz"),
      cmdline: "console=ttyS0 quiet loglevel=4 vhost.demo",
      memory_size: 128 << 20,
      disable_speaker: true,
      acpi: false,
    },
  });
  // v86 and the vhost workers share the page's thread: the file is served by an I/O thread.
  const disk = await attachVirtioScsi({ emulator, shm, cpu }, { luns: [{ backstore: "opfs", path: GUEST_DISK, size: 96 << 20, ioThreads: 1 }] });
  guest = { emulator, disk };
  return new Promise((resolve) => {
    const boot: Partial<GuestBoot> = { io: {} };
    let line = "";
    emulator.add_listener("serial0-output-byte", (...a: unknown[]) => {
      const ch = String.fromCharCode(a[0] as number);
      if (ch !== "\n") {
        line += ch;
        return;
      }
      const l = line.replace(/\r$/, "");
      line = "";
      onLine(l);
      // "IO <disk> <read|write> <count>x4k seconds <t0> <t1>", the guest's own clock.
      const io = /^=== IO (\S+) (\S+) (\d+)x4k seconds (\S+) (\S+)/.exec(l);
      if (io) boot.io![`${io[1]} ${io[2]}`] = Math.round(Number(io[3]) / (Number(io[5]) - Number(io[4])));
      const m = /^=== (BOOTED|DEMO) ?(\S*) ?(\S*) ?\S* ?(\d*)/.exec(l);
      if (!m) return;
      if (m[1] === "BOOTED") boot.bootMs = performance.now() - t0;
      else if (m[2] === "WROTE") Object.assign(boot, { wrote: m[3], boot: Number(m[4]) });
      else if (m[2] === "FOUND") Object.assign(boot, { found: m[3], boot: Number(m[4]) });
      else if (m[2] === "READY:") resolve({ ...boot, readyMs: performance.now() - t0 } as GuestBoot);
    });
    emulator.run();
  });
}

async function stopGuest(): Promise<void> {
  if (!guest) return;
  const { emulator, disk } = guest;
  guest = undefined;
  await emulator.stop();
  await disk.close();
  await emulator.destroy();
}

/** Removes the guest's disk from the OPFS (the next boot makes a new filesystem). */
async function eraseGuestDisk(): Promise<void> {
  await stopGuest();
  const root = await navigator.storage.getDirectory();
  const dir = await root.getDirectoryHandle("guest").catch(() => undefined);
  await dir?.removeEntry("disk.img").catch(() => {});
}

declare global {
  interface Window {
    demo: { runBenchmark: typeof runBenchmark; bootGuest: typeof bootGuest; stopGuest: typeof stopGuest; eraseGuestDisk: typeof eraseGuestDisk; ready: true };
  }
}
window.demo = { runBenchmark, bootGuest, stopGuest, eraseGuestDisk, ready: true };

// ---- the page ----
await preloadWasm();
const chart = new RateChart($<HTMLCanvasElement>("chart"));
$("isolation").textContent = crossOriginIsolated
  ? `cross-origin isolated: yes (SharedArrayBuffer available), ${platform.cores()} cores`
  : "cross-origin isolated: NO: the server must send COOP/COEP";
const form = () => ({
  backstore: $<HTMLSelectElement>("backstore").value as BenchForm["backstore"],
  rw: $<HTMLSelectElement>("rw").value,
  bs: $<HTMLSelectElement>("bs").value,
  iodepth: Number($<HTMLInputElement>("iodepth").value),
  queues: Number($<HTMLInputElement>("queues").value),
  runtime: Number($<HTMLInputElement>("runtime").value),
  verify: $<HTMLInputElement>("verify").checked,
});
let last: Awaited<ReturnType<typeof runBenchmark>> | undefined;
$("run").onclick = async () => {
  $<HTMLButtonElement>("run").disabled = true;
  $<HTMLButtonElement>("stop").disabled = false;
  $("report").textContent = "running...";
  chart.reset();
  try {
    last = await runBenchmark(form(), (r) => {
      chart.add(r);
      $("live").textContent = `${fmtIops(r.read + r.write)} IOPS (read ${fmtIops(r.read)}, write ${fmtIops(r.write)}) at ${r.seconds.toFixed(1)} s`;
    });
    $("report").textContent = last.text;
    $("plot").innerHTML = last.svg;
    $<HTMLButtonElement>("save-text").disabled = $<HTMLButtonElement>("save-json").disabled = false;
  } catch (e) {
    $("report").textContent = `failed: ${(e as Error).message}`;
  } finally {
    $<HTMLButtonElement>("run").disabled = false;
    $<HTMLButtonElement>("stop").disabled = true;
  }
};
$("stop").onclick = () => running?.stop();
$("save-text").onclick = () => last && download("vhost-scsi-report.txt", "text/plain", `${last.text}\n`);
$("save-json").onclick = () => last && download("vhost-scsi-fio.json", "application/json", `${JSON.stringify(last.json, null, 2)}\n`);

const consoleEl = $<HTMLPreElement>("console");
const print = (l: string) => {
  consoleEl.textContent += `${l}\n`;
  consoleEl.scrollTop = consoleEl.scrollHeight;
};
$("boot").onclick = async () => {
  $<HTMLButtonElement>("boot").disabled = true;
  consoleEl.textContent = "";
  try {
    const b = await bootGuest(print);
    $("guest-state").textContent =
      `${b.wrote ? `first boot: wrote hello.bin, sha256 ${b.wrote}` : `boot ${b.boot}: found hello.bin, sha256 ${b.found}`}; booted in ${(b.bootMs / 1000).toFixed(1)} s, ready in ${(b.readyMs / 1000).toFixed(1)} s; the guest measured ${Object.entries(
        b.io,
      )
        .map(([k, v]) => `${k} ${v} IOPS`)
        .join(", ")} (4 KiB, O_DIRECT)`;
    $<HTMLInputElement>("type").disabled = false;
    $<HTMLButtonElement>("poweroff").disabled = false;
  } catch (e) {
    print(`failed: ${(e as Error).message}`);
    $<HTMLButtonElement>("boot").disabled = false;
  }
};
$<HTMLInputElement>("type").onkeydown = (e) => {
  if (e.key !== "Enter" || !guest) return;
  const input = e.target as HTMLInputElement;
  guest.emulator.serial0_send(`${input.value}\n`);
  input.value = "";
};
$("poweroff").onclick = async () => {
  await stopGuest();
  $<HTMLButtonElement>("boot").disabled = false;
  $<HTMLButtonElement>("poweroff").disabled = true;
  $<HTMLInputElement>("type").disabled = true;
  print("(the emulator was stopped; the disk stays in the browser)");
};
$("erase").onclick = async () => {
  await eraseGuestDisk();
  $<HTMLButtonElement>("boot").disabled = false;
  $("guest-state").textContent = "the guest's disk was erased: the next boot makes a new filesystem";
};
