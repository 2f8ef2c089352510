// A v86 snapshot with its disk, across processes: `node scripts/guest-snapshot.mjs save DIR` boots
// the guest with "vhost.snapshot" (scripts/guest/init.sh), and once it has a mounted filesystem
// on the virtio-scsi RAM LUN with files written, stops the machine and writes v86's state and the
// disk's (transport registers, device state, the RAM LUN's blocks) to DIR; `restore DIR` in
// another process attaches a disk alike to a fresh emulator, restores both, lets the guest go on
// and reports what it found. Each prints one JSON line. DIR holds v86.state, disk.json and one
// .bin per RAM disk, plain files a browser page can fetch (test/browser/pages/snapshot.html).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { guestImages } from "./guest-image.mjs";
import { serialLines, v86Options } from "./guest.mjs";

const dist = new URL("../dist/src/", import.meta.url);
/** The one WWPN both processes use: a snapshot restores only onto the same target. */
export const SNAPSHOT_WWPN = "naa.5001405aaaaaaaaa";
export const SNAPSHOT_LUN0 = { backstore: "ram", size: 32 << 20, serial: "SNAP0" };
/** The host's key for the guest to go on after a restore. */
export const SNAPSHOT_GO = "go\n";

/** A guest with the snapshot workload and its virtio-scsi disk, loaded, not running. */
async function machine() {
  const images = guestImages();
  const { createV86WithSharedMemory, attachVirtioScsi } = await import(new URL("v86/index.js", dist).href);
  const { emulator, shm, cpu } = await createV86WithSharedMemory({ v86: v86Options(images, { cmdline: "vhost.snapshot" }), deviceBytes: 48 << 20 });
  const disk = await attachVirtioScsi({ emulator, shm, cpu }, { luns: [SNAPSHOT_LUN0], wwpn: SNAPSHOT_WWPN });
  const lines = [];
  const waiters = [];
  serialLines(emulator, (l) => {
    lines.push(l);
    for (const w of waiters.splice(0)) w(l);
  });
  /** Resolves with the first line from now on that matches re (rejects after ms). */
  const expectLine = (re, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${re}" within ${ms} ms; last lines:\n${lines.slice(-15).join("\n")}`)), ms);
      const check = (l) => (re.test(l) ? (clearTimeout(timer), resolve(l)) : waiters.push(check));
      waiters.push(check);
    });
  const results = () => Object.fromEntries(lines.flatMap((l) => (/^=== RESULT (\S+) (.*)$/.exec(l) ? [[RegExp.$1, RegExp.$2]] : [])));
  return { emulator, disk, lines, expectLine, results };
}

export async function saveSnapshot(dir, timeoutMs = 150_000) {
  const m = await machine();
  m.emulator.run();
  const ready = await m.expectLine(/^=== SNAPSHOT READY/, timeoutMs);
  await m.emulator.stop();
  const disk = await m.disk.snapshot();
  const vm = await m.emulator.save_state();
  writeFileSync(join(dir, "v86.state"), new Uint8Array(vm));
  const disks = disk.disks.map((d, i) => {
    writeFileSync(join(dir, `disk-${i}.bin`), d.bytes);
    return { name: d.name, file: `disk-${i}.bin` };
  });
  writeFileSync(join(dir, "disk.json"), JSON.stringify({ pci: disk.pci, device: disk.device, disks }));
  await m.disk.close();
  await m.emulator.destroy();
  return { ready, results: m.results(), v86Bytes: vm.byteLength };
}

export async function restoreSnapshot(dir, timeoutMs = 150_000) {
  const m = await machine();
  const vm = readFileSync(join(dir, "v86.state"));
  await m.emulator.restore_state(vm.buffer.slice(vm.byteOffset, vm.byteOffset + vm.byteLength));
  const saved = JSON.parse(readFileSync(join(dir, "disk.json"), "utf8"));
  await m.disk.restore({ ...saved, disks: saved.disks.map((d) => ({ name: d.name, bytes: new Uint8Array(readFileSync(join(dir, d.file))) })) });
  m.emulator.run();
  m.emulator.serial0_send(SNAPSHOT_GO);
  await m.expectLine(/^=== DONE/, timeoutMs);
  const requests = Number(m.disk.device.vhost.vringStatus(2)?.stats.completed ?? 0);
  await m.emulator.stop();
  await m.disk.close();
  await m.emulator.destroy();
  return { results: m.results(), requests, lines: m.lines.slice(-12) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [what, dir] = process.argv.slice(2);
  try {
    const r = what === "save" ? await saveSnapshot(dir) : what === "restore" ? await restoreSnapshot(dir) : undefined;
    if (!r) throw new Error("usage: guest-snapshot.mjs save|restore DIR");
    console.log(JSON.stringify(r));
    process.exit(0);
  } catch (e) {
    console.error(`guest-snapshot: ${e.message}`);
    process.exit(1);
  }
}
