// The images a Linux guest in v86 boots from, fetched once from Debian's i386 packages into a
// cache directory and never committed: SeaBIOS (bios.bin, vgabios-stdvga.bin), a 686 kernel
// (vmlinuz, and the modules virtio_scsi needs), and an initramfs built here from busybox-static,
// sg3-utils (with its libraries) and the workload script (scripts/guest/init.sh).
//
// `apt-get download` runs with one-shot options (architecture i386, a scratch lists directory),
// so the system's apt configuration is left as it is. Needs apt-get and dpkg-deb.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";

const here = dirname(new URL(import.meta.url).pathname);

/** Where the images are kept: $VHOST_SCSI_GUEST_CACHE, else ~/.cache/vhost-scsi-wasm/guest. */
export function guestCacheDir() {
  return process.env.VHOST_SCSI_GUEST_CACHE ?? join(homedir(), ".cache", "vhost-scsi-wasm", "guest");
}

/** Kernel modules the guest loads (their dependencies are found from the modules themselves). */
const MODULES = ["virtio_pci", "virtio_scsi", "sd_mod", "virtio_blk", "crc32c_generic", "ext4"];
/** Modules for v86's own IDE disk, loaded later for the comparison. */
const IDE_MODULES = ["ata_piix"];
/** Busybox applets the workload uses (links to /bin/busybox). */
const APPLETS = [
  "sh",
  "mount",
  "umount",
  "mkdir",
  "mke2fs",
  "dd",
  "sync",
  "sha256sum",
  "insmod",
  "rmmod",
  "lsmod",
  "cat",
  "echo",
  "sleep",
  "grep",
  "ls",
  "dmesg",
  "poweroff",
  "cmp",
  "seq",
  "head",
  "tail",
  "cp",
  "rm",
  "wc",
  "test",
  "[",
  "true",
  "false",
  "uname",
  "tr",
  "cut",
];
const SG_TOOLS = ["sg_reset", "sg_inq", "sg_turs", "sg_persist", "sg_compare_and_write"];

function which(cmd) {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });
}

/** apt-get with its own sources, lists and cache under `dir`, for i386 packages. */
function apt(dir) {
  mkdirSync(join(dir, "lists", "partial"), { recursive: true });
  mkdirSync(join(dir, "cache", "archives", "partial"), { recursive: true });
  writeFileSync(
    join(dir, "sources.list"),
    ["deb [arch=i386] http://deb.debian.org/debian bookworm main", "deb [arch=i386] http://deb.debian.org/debian-security bookworm-security main", ""].join(
      "\n",
    ),
  );
  const opts = [
    "-o",
    "APT::Architecture=i386",
    "-o",
    "APT::Architectures=i386",
    "-o",
    `Dir::Etc::SourceList=${join(dir, "sources.list")}`,
    "-o",
    "Dir::Etc::SourceParts=/dev/null",
    "-o",
    `Dir::State::Lists=${join(dir, "lists")}`,
    "-o",
    `Dir::Cache=${join(dir, "cache")}`,
    "-o",
    "Debug::NoLocking=1",
  ];
  return {
    update: () => run("apt-get", [...opts, "-q", "update"]),
    search: (re) => run("apt-cache", [...opts, "search", "--names-only", re]),
    download: (pkgs, cwd) => run("apt-get", [...opts, "-q", "download", ...pkgs], { cwd }),
  };
}

/** The `depends=` list in a kernel module's .modinfo. */
function moduleDepends(ko) {
  const text = readFileSync(ko).toString("latin1");
  const m = /\0depends=([^\0]*)\0/.exec(text);
  return m?.[1] ? m[1].split(",").filter(Boolean) : [];
}

/** Every .ko under dir, by module name (dashes and underscores alike). */
function moduleIndex(dir) {
  const idx = new Map();
  for (const f of readdirSync(dir, { recursive: true })) {
    if (!f.endsWith(".ko")) continue;
    const name = f.split("/").pop().slice(0, -3).replace(/-/g, "_");
    idx.set(name, join(dir, f));
  }
  return idx;
}

/** Modules to load, dependencies first. */
function loadOrder(idx, wanted) {
  const order = [];
  const seen = new Set();
  const visit = (name) => {
    const key = name.replace(/-/g, "_");
    if (seen.has(key)) return;
    seen.add(key);
    const ko = idx.get(key);
    if (!ko) return; // built into the kernel
    for (const d of moduleDepends(ko)) visit(d);
    order.push(key);
  };
  wanted.forEach(visit);
  return order;
}

/** A newc cpio archive of entries { path, mode, data?, link? } (directories first). */
function cpio(entries) {
  const parts = [];
  let ino = 1;
  const hex = (n) => n.toString(16).padStart(8, "0");
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const add = (name, mode, data) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBuf.length, 0].map(hex).join("")}`;
    parts.push(Buffer.from(header), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e.path, e.mode, e.link ? Buffer.from(e.link) : (e.data ?? Buffer.alloc(0)));
  add("TRAILER!!!", 0, Buffer.alloc(0));
  return Buffer.concat(parts);
}

/**
 * The images, fetched and built on first use. Returns their paths; throws with a clear reason
 * when they cannot be had (no apt-get or dpkg-deb, no network).
 */
export function guestImages({ cacheDir = guestCacheDir(), log = () => {} } = {}) {
  const out = {
    bios: join(cacheDir, "bios.bin"),
    vgaBios: join(cacheDir, "vgabios-stdvga.bin"),
    kernel: join(cacheDir, "vmlinuz"),
    initrd: join(cacheDir, "initramfs.cpio.gz"),
  };
  const initScript = readFileSync(join(here, "guest", "init.sh"));
  const stamp = join(cacheDir, "ready.json");
  // Rebuilt when the workload script or this builder changes.
  const want = createHash("sha1")
    .update(initScript)
    .update(readFileSync(new URL(import.meta.url)))
    .digest("hex");
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === want && Object.values(out).every(existsSync)) return out;
  if (!which("apt-get") || !which("dpkg-deb")) throw new Error("guest images: apt-get and dpkg-deb are needed to fetch them (a Debian or Ubuntu host)");
  mkdirSync(cacheDir, { recursive: true });
  const debs = join(cacheDir, "debs");
  const root = join(cacheDir, "root");
  const a = apt(join(cacheDir, "apt"));
  if (!existsSync(debs) || readdirSync(debs).filter((f) => f.endsWith(".deb")).length < 6) {
    log("fetching Debian i386 package lists");
    try {
      a.update();
    } catch (e) {
      // A suite that fails (an unreachable security mirror) is no reason to stop if main answered.
      log(`apt-get update reported: ${e.stderr?.toString().split("\n").filter(Boolean).pop() ?? e.message}`);
    }
    const kernels = a
      .search("^linux-image-6\\.1\\.0-[0-9]+-686-unsigned$")
      .split("\n")
      .map((l) => l.split(" ")[0])
      .filter(Boolean);
    if (kernels.length === 0) throw new Error("guest images: no linux-image-6.1.0-*-686-unsigned in Debian bookworm i386 (no network?)");
    const kernel = kernels.sort((x, y) => Number(/-(\d+)-686/.exec(x)[1]) - Number(/-(\d+)-686/.exec(y)[1])).pop();
    mkdirSync(debs, { recursive: true });
    log(`downloading ${kernel}, busybox-static, sg3-utils, seabios`);
    a.download([kernel, "busybox-static", "sg3-utils", "libsgutils2-1.46-2", "libc6", "seabios"], debs);
  }
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  for (const f of readdirSync(debs)) if (f.endsWith(".deb")) run("dpkg-deb", ["-x", join(debs, f), root]);
  const kdir = readdirSync(join(root, "lib", "modules"))[0];
  writeFileSync(out.kernel, readFileSync(join(root, "boot", `vmlinuz-${kdir}`)));
  writeFileSync(out.bios, readFileSync(join(root, "usr", "share", "seabios", "bios.bin")));
  writeFileSync(out.vgaBios, readFileSync(join(root, "usr", "share", "seabios", "vgabios-stdvga.bin")));

  // The initramfs: busybox and its links, the modules in load order, sg3-utils and its libraries.
  const entries = [];
  const dirs = new Set();
  const dir = (p) => {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (d && !dirs.has(d)) {
        dirs.add(d);
        entries.push({ path: d, mode: 0o40755 });
      }
    }
  };
  const file = (p, data, mode = 0o100755) => {
    dir(p);
    entries.push({ path: p, mode, data });
  };
  const link = (p, target) => {
    dir(p);
    entries.push({ path: p, mode: 0o120777, link: target });
  };
  for (const d of ["dev", "proc", "sys", "mnt", "tmp", "root"]) dir(`${d}/x`);
  file("bin/busybox", readFileSync(join(root, "bin", "busybox")));
  for (const ap of APPLETS) link(`bin/${ap}`, "busybox");
  const idx = moduleIndex(join(root, "lib", "modules", kdir, "kernel"));
  const order = loadOrder(idx, MODULES);
  const ide = loadOrder(idx, IDE_MODULES).filter((m) => !order.includes(m));
  for (const m of [...order, ...ide]) file(`lib/modules/${m}.ko`, readFileSync(idx.get(m)), 0o100644);
  file("etc/modules.order", Buffer.from(`${order.join("\n")}\n`), 0o100644);
  file("etc/modules.ide", Buffer.from(`${ide.join("\n")}\n`), 0o100644);
  // Dynamically linked sg3-utils: the binaries, libsgutils2, and glibc's loader and libc.
  for (const t of SG_TOOLS) file(`usr/bin/${t}`, readFileSync(join(root, "usr", "bin", t)));
  const libdir = join(root, "lib", "i386-linux-gnu");
  const usrlib = join(root, "usr", "lib", "i386-linux-gnu");
  const copyLib = (from, name) => {
    const p = join(from, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) {
      link(`lib/i386-linux-gnu/${name}`, readlinkSync(p));
      copyLib(from, readlinkSync(p).split("/").pop());
    } else file(`lib/i386-linux-gnu/${name}`, readFileSync(p));
  };
  for (const n of ["ld-linux.so.2", "libc.so.6"]) copyLib(libdir, n);
  for (const n of readdirSync(usrlib).filter((n) => n.startsWith("libsgutils2"))) copyLib(usrlib, n);
  link("lib/ld-linux.so.2", "i386-linux-gnu/ld-linux.so.2");
  file("init", initScript);
  writeFileSync(out.initrd, gzipSync(cpio(entries), { level: 6 }));
  writeFileSync(stamp, want);
  log(`guest images ready in ${cacheDir} (kernel ${kdir}, modules: ${order.join(" ")})`);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const p = guestImages({ log: (m) => console.log(m) });
    console.log(JSON.stringify(p, null, 2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
