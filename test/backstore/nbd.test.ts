// The NBD backstore against real servers started here (nbdkit's memory plugin, qemu-nbd over a
// raw file) and against a small fake server that misbehaves on purpose. Tests that need a
// server binary say so and skip where it is not installed (.ci/run installs qemu-utils and
// nbdkit).
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createServer, type Socket } from "node:net";
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed, type Testbed } from "../../src/testbed.js";
import { parseNbdUri } from "../../src/backstore/nbd.js";
import { read16, readCapacity16, testUnitReady, write16 } from "../../src/guest/scsi-commands.js";
import { SenseKey } from "../../src/guest/sense.js";
import { VIRTIO_SCSI_S_TRANSPORT_FAILURE } from "../../src/virtio/virtio-scsi.js";
import type { LunConfig } from "../../src/target/tpg.js";
import { clearUnitAttentions, expectGood, expectSense } from "../helpers/scsi.js";
import { block, script, UNMAP_READS } from "../helpers/scsi-script.js";
import { BLOCKS, stress } from "../helpers/stress.js";
import { until } from "../helpers/backstores.js";
import { freePort, startListening, type ListenAt } from "../helpers/server-process.js";
import { FakeNbdServer } from "../helpers/nbd-server.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-nbd-"));
const has = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const NBDKIT = has("nbdkit");
const QEMU_NBD = has("qemu-nbd");
const PYTHON = has("python3");
let bed: Testbed | undefined;
const servers: (ChildProcess | FakeNbdServer)[] = [];
afterEach(async () => {
  await bed?.close();
  bed = undefined;
  for (const s of servers.splice(0)) {
    if (s instanceof FakeNbdServer) await s.close();
    else s.kill("SIGKILL");
  }
});

/** Starts a server process that listens on `sock`; resolves once it takes connections. */
const start = (cmd: string, args: string[], sock: string) => startListening(cmd, args, { sock }, servers);

const nbdkitMemory = async (size: string) => {
  const sock = join(dir, `k-${Math.random()}.sock`);
  await start("nbdkit", ["-f", "-U", sock, "memory", size], sock);
  return `nbd+unix:///?socket=${sock}`;
};

/** qemu-nbd over a raw file (kept across restarts of the server). */
const qemuNbd = async (file: string, extra: string[] = []) => {
  const sock = join(dir, `q-${Math.random()}.sock`);
  const p = await start("qemu-nbd", ["-f", "raw", "-k", sock, "-t", "-e", "8", ...extra, file], sock);
  return { uri: `nbd+unix:///?socket=${sock}`, p, sock };
};

const lun0 = async (cfg: LunConfig, queues = 2) => {
  bed = await createTestbed({ luns: [cfg], queues });
  await clearUnitAttentions(bed);
  return bed;
};

describe("NBD URIs", () => {
  it("parses nbd[s]:// and nbd[s]+unix:// as qemu and nbdkit write them, and refuses the rest", () => {
    expect(parseNbdUri("nbd://storage.example:10810/disk0")).toEqual({ host: "storage.example", port: 10810, export: "disk0" });
    expect(parseNbdUri("nbd://10.0.0.5/")).toEqual({ host: "10.0.0.5", port: 10809, export: "" });
    expect(parseNbdUri("nbd+unix:///vol?socket=/run/nbd.sock")).toEqual({ socket: "/run/nbd.sock", export: "vol" });
    expect(parseNbdUri("nbds://host/x?tls-psk-file=/k")).toEqual({ host: "host", port: 10809, export: "x" });
    expect(parseNbdUri("nbds+unix:///x?socket=/s")).toEqual({ socket: "/s", export: "x" });
    expect(() => parseNbdUri("nbd+unix:///x")).toThrow(/socket=PATH/);
    expect(() => parseNbdUri("http://host/x")).toThrow(/the scheme must be nbd:, nbd\+unix:, nbds: or nbds\+unix:/);
  });
});

/**
 * Large reads, whose reply data is read straight into the guest's buffers where a piece is large
 * enough (and into the connection's buffer otherwise): 32 reads of 128 KiB in flight at once,
 * with the data-in in one piece and in 4 KiB and 20 KiB pieces, each checked against what was
 * written.
 */
async function largeReads(t: Testbed): Promise<void> {
  const blocks = 256; // 128 KiB
  const data = (i: number) => Uint8Array.from({ length: blocks * 512 }, (_, k) => (i * 7 + k * 13 + (k >> 9)) & 0xff);
  for (let i = 0; i < 8; i++) expectGood(await t.driver.command({ lun: 0, cdb: write16(i * blocks, blocks), dataOut: data(i) }));
  for (const fragment of [undefined, 4096, 20 << 10]) {
    const rs = await Promise.all(
      Array.from({ length: 32 }, (_, k) => t.driver.command({ lun: 0, cdb: read16((k % 8) * blocks, blocks), dataInLength: blocks * 512, fragment })),
    );
    rs.forEach((r, k) => {
      expectGood(r);
      expect(Buffer.from(r.dataIn).equals(Buffer.from(data(k % 8))), `read ${k}, pieces of ${fragment ?? "any"} bytes`).toBe(true);
    });
  }
}

describe.skipIf(!NBDKIT)("nbdkit's memory plugin", () => {
  if (!NBDKIT) console.warn("skipped: nbdkit is not installed (Debian package nbdkit)");
  it("answers the SCSI command script as the RAM disk does", async () => {
    const ram = await script(await lun0({ backstore: "ram", size: 1 << 20 }));
    await bed!.close();
    bed = undefined;
    const nbd = await script(await lun0({ backstore: "nbd", uri: await nbdkitMemory("1M") }));
    expect(nbd).toEqual(ram);
  });

  it("serves a LUN over TCP (nbd://127.0.0.1:PORT/) as over a unix socket", async () => {
    const port = await freePort();
    const p = spawn("nbdkit", ["-f", "-i", "127.0.0.1", "-p", String(port), "memory", "1M"], { stdio: "ignore" });
    servers.push(p);
    const uri = `nbd://127.0.0.1:${port}/`;
    // nbdkit listens a moment after it starts: connection refused until then.
    let t: Testbed | undefined;
    for (const end = Date.now() + 10_000; !t && Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      t = await lun0({ backstore: "nbd", uri }).catch(() => undefined);
    }
    expectGood(await t!.driver.command({ lun: 0, cdb: write16(7, 2), dataOut: block(7, 2) }));
    const r = await t!.driver.command({ lun: 0, cdb: read16(7, 2), dataInLength: 1024 });
    expectGood(r);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(block(7, 2)))).toBe(true);
  });

  it("reads 128 KiB replies (structured, OFFSET_DATA) into whole and fragmented guest buffers exactly", async () => {
    await largeReads(await lun0({ backstore: "nbd", uri: await nbdkitMemory("4M"), connections: 1 }, 1));
  });

  it("keeps every block exact under the integrity stress (4 submitters, 2 queues)", async () => {
    const uri = await nbdkitMemory(`${BLOCKS * 512}`);
    const r = await stress({ luns: [{ backstore: "nbd", uri }], queues: 2, queueSize: 64 }, 4);
    expect(r).toMatchObject({ mismatches: 0, failed: 0 });
  });

  it("is served by the vhost workers, each with a client of its own, and with onWorkers false by this thread: the same answers", async () => {
    const uri = await nbdkitMemory("1M");
    const answers = [];
    for (const onWorkers of [true, false]) {
      bed = await createTestbed({ luns: [{ backstore: "nbd", uri, onWorkers }], queues: 2, workers: 2 });
      await clearUnitAttentions(bed);
      // nbdkit's memory plugin allows several connections (NBD_FLAG_CAN_MULTI_CONN).
      expect(bed.tpg.lun(0)!.workerServed !== undefined).toBe(onWorkers);
      answers.push(await script(bed));
      await bed.close();
      bed = undefined;
    }
    expect(answers[0]).toEqual(answers[1]);
  });

  it("keeps every block exact under the integrity stress with two workers serving it (4 submitters, 2 queues)", async () => {
    const uri = await nbdkitMemory(`${BLOCKS * 512}`);
    const r = await stress({ luns: [{ backstore: "nbd", uri }], queues: 2, queueSize: 64, workers: 2 }, 4);
    expect(r).toMatchObject({ mismatches: 0, failed: 0 });
  });
});

describe.skipIf(!QEMU_NBD)("qemu-nbd over a raw file", () => {
  if (!QEMU_NBD) console.warn("skipped: qemu-nbd is not installed (Debian package qemu-utils)");
  const image = (size: number) => {
    const f = join(dir, `img-${Math.random()}.raw`);
    writeFileSync(f, "");
    truncateSync(f, size);
    return f;
  };

  it("answers the SCSI command script as the RAM disk does", async () => {
    const ram = await script(await lun0({ backstore: "ram", size: 1 << 20 }));
    await bed!.close();
    bed = undefined;
    const { uri } = await qemuNbd(image(1 << 20));
    const t = await lun0({ backstore: "nbd", uri });
    const nbd = await script(t);
    // NBD_CMD_TRIM leaves the blocks' contents undefined (qemu-nbd ignores it by default), so
    // the LUN offers UNMAP without LBPRZ and the two reads after the UNMAP may differ.
    const afterUnmap = (a: unknown[]) => a.filter((_, i) => i !== UNMAP_READS[0] && i !== UNMAP_READS[1]);
    expect(afterUnmap(nbd)).toEqual(afterUnmap(ram));
    const cap = await t.driver.command({ lun: 0, cdb: readCapacity16(), dataInLength: 32 });
    expectGood(cap);
    expect(cap.dataIn[14] & 0xc0).toBe(0x80); // LBPME, not LBPRZ (SBC-4 5.20.2)
  });

  it("an export the server does not have is refused with its name", async () => {
    const { sock } = await qemuNbd(image(1 << 20), ["-x", "disk0"]);
    await expect(createTestbed({ luns: [{ backstore: "nbd", uri: `nbd+unix:///disk1?socket=${sock}` }] })).rejects.toThrow(/no export "disk1"/);
    bed = await createTestbed({ luns: [{ backstore: "nbd", uri: `nbd+unix:///disk0?socket=${sock}` }] });
    await clearUnitAttentions(bed);
    expectGood(await bed.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 }));
  });

  it("a read-only export is a write-protected LUN (DATA PROTECT on writes)", async () => {
    const { uri } = await qemuNbd(image(1 << 20), ["-r"]);
    const t = await lun0({ backstore: "nbd", uri });
    expectSense(await t.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: block(0) }), SenseKey.DATA_PROTECT, 0x2700);
    expectGood(await t.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 }));
  });

  it("the server killed mid-run and started again: requests are sent again, each completes once, every block exact", async () => {
    const file = image(BLOCKS * 512);
    const first = await qemuNbd(file);
    let restarted = false;
    const run = stress({ luns: [{ backstore: "nbd", uri: first.uri, reconnectMs: 20_000 }], queues: 2, queueSize: 64 }, 4);
    await new Promise((r) => setTimeout(r, 400));
    first.p.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    await start("qemu-nbd", ["-f", "raw", "-k", first.sock, "-t", "-e", "8", file], first.sock);
    restarted = true;
    const r = await run;
    expect(restarted).toBe(true);
    expect(r).toMatchObject({ mismatches: 0, failed: 0 });
  });

  it("a server that stops answering: after the timeout the requests end as TRANSPORT_FAILURE, later ones succeed", async () => {
    const { uri, p } = await qemuNbd(image(1 << 20));
    const t = await lun0({ backstore: "nbd", uri, timeoutMs: 300, reconnectMs: 800 });
    expectGood(await t.driver.command({ lun: 0, cdb: write16(0, 1), dataOut: block(0) }));
    p.kill("SIGSTOP");
    try {
      const r = await t.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 });
      expect(r.response).toBe(VIRTIO_SCSI_S_TRANSPORT_FAILURE);
    } finally {
      p.kill("SIGCONT");
    }
    await until(() => true);
    const again = await t.driver.command({ lun: 0, cdb: read16(0, 1), dataInLength: 512 });
    expectGood(again);
    expect(Buffer.from(again.dataIn).equals(Buffer.from(block(0)))).toBe(true);
  });
});

describe("a misbehaving NBD server", () => {
  const fake = async (opts: ConstructorParameters<typeof FakeNbdServer>[0]) => {
    const s = new FakeNbdServer(opts);
    await s.listen();
    servers.push(s);
    return s;
  };

  it("reads 128 KiB simple replies into whole and fragmented guest buffers exactly", async () => {
    const s = await fake({ size: 4 << 20 });
    await largeReads(await lun0({ backstore: "nbd", uri: s.uri }, 1));
  });

  it("server errors become the SCSI answers Linux expects", async () => {
    const errno = { v: 0 };
    const s = await fake({ size: 1 << 20, flags: 4, script: () => (errno.v ? { reply: "error", errno: errno.v } : undefined) });
    const t = await lun0({ backstore: "nbd", uri: s.uri });
    const write = () => t.driver.command({ lun: 0, cdb: write16(1, 1), dataOut: block(1) });
    for (const [e, key, asc] of [
      [5, SenseKey.MEDIUM_ERROR, 0x0c00],
      [28, SenseKey.DATA_PROTECT, 0x2707],
      [1, SenseKey.DATA_PROTECT, 0x2700],
      [22, SenseKey.ILLEGAL_REQUEST, 0x2400],
    ] as const) {
      errno.v = e;
      expectSense(await write(), key, asc);
    }
    errno.v = 5;
    expectSense(await t.driver.command({ lun: 0, cdb: read16(1, 1), dataInLength: 512 }), SenseKey.MEDIUM_ERROR, 0x1100);
    errno.v = 0;
    expectGood(await write());
  });

  it.each([
    ["a wrong reply magic", () => Buffer.from("0123456789abcdef0123456789abcdef")],
    ["a reply for a cookie never sent", () => Buffer.from("67446698000000000000000000012345", "hex")],
  ])("%s closes the connection; the request is sent again on a new one and completes once", async (_n, garbage) => {
    let bad = true;
    const s = await fake({
      size: 1 << 20,
      script: (r) => {
        if (r.type !== 0 || !bad) return undefined;
        bad = false;
        return { reply: "raw", bytes: garbage() };
      },
    });
    s.image.set(block(7), 7 * 512);
    const t = await lun0({ backstore: "nbd", uri: s.uri, reconnectMs: 5000 });
    const before = s.requests.length;
    const r = await t.driver.command({ lun: 0, cdb: read16(7, 1), dataInLength: 512 });
    expectGood(r);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(block(7)))).toBe(true);
    expect(s.requests.length - before).toBe(2); // the read, and the same read again after reconnecting
  });

  it("a dropped connection with writes in flight: each is sent again and completes once", async () => {
    let drops = 2;
    const s = await fake({ size: 1 << 20, script: (r, c) => (r.type === 1 && drops-- > 0 ? (c.destroy(), { reply: "silence" }) : undefined) });
    const t = await lun0({ backstore: "nbd", uri: s.uri });
    const results = await Promise.all([3, 4, 5].map((lba) => t.driver.command({ lun: 0, cdb: write16(lba, 1), dataOut: block(lba) })));
    for (const r of results) expectGood(r);
    for (const lba of [3, 4, 5]) expect(s.image.subarray(lba * 512, lba * 512 + 512).equals(Buffer.from(block(lba)))).toBe(true);
  });

  it("a LUN removed while its workers' clients reconnect to a server that never greets: the device's other LUN is served meanwhile", async () => {
    const path = join(dir, `gone-${Math.random()}.sock`);
    const s = await fake({ size: 1 << 20, flags: 1 << 8, socketPath: path }); // multi-conn: served by the vhost workers
    bed = await createTestbed({
      luns: [
        { backstore: "ram", size: 1 << 20 },
        { backstore: "nbd", uri: s.uri },
      ],
    });
    await clearUnitAttentions(bed, [0, 1]);
    expect(bed.tpg.lun(1)!.workerServed).toBeDefined();
    // The server goes; a listener that accepts and never greets takes its place: a reconnect
    // attempt now lasts until its handshake times out (2 s) or the listener lets it go.
    await s.close();
    rmSync(path, { force: true });
    const held: Socket[] = [];
    const mute = createServer((c) => held.push(c.on("error", () => {}).resume()));
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      await until(() => held.length > 0);
      const order: string[] = [];
      held[0].on("end", () => order.push("attempt over"));
      const removed = bed.tpg.removeLun(1);
      // Well inside the attempt's 2 s, the worker has had the removal (its new list of backstores).
      await new Promise((r) => setTimeout(r, 300));
      // The worker lets go of the client without waiting for its attempt: LUN 0 is served now
      // (its answer may be the unit attention the removal raised: REPORTED LUNS DATA HAS CHANGED).
      expect((await bed.driver.command({ lun: 0, cdb: testUnitReady() })).response).toBe(0);
      order.push("served");
      await removed;
      expect(order[0]).toBe("served");
    } finally {
      for (const c of held) c.destroy();
      await new Promise((r) => mute.close(r));
    }
  });

  it("a server that requires TLS is refused with a message saying so", async () => {
    const s = await fake({ size: 1 << 20, requireTls: true });
    await expect(createTestbed({ luns: [{ backstore: "nbd", uri: s.uri }] })).rejects.toThrow(/requires TLS/);
  });

  it("with NBD_FLAG_CAN_MULTI_CONN the requests are spread over two connections; without, one", async () => {
    for (const [flags, conns] of [
      [1 << 8, 2],
      [0, 1],
    ] as const) {
      const s = await fake({ size: 1 << 20, flags });
      const t = await lun0({ backstore: "nbd", uri: s.uri });
      await Promise.all(Array.from({ length: 16 }, (_, lba) => t.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })));
      expect(s.connections.size).toBe(conns);
      await bed!.close();
      bed = undefined;
    }
  });
});

describe("a storage server that restarts (NBD_ESHUTDOWN, soft disconnect, reconnect)", () => {
  /** A raw image file that outlives the servers exporting it. */
  const rawImage = (size: number) => {
    const f = join(dir, `restart-${Math.random()}.raw`);
    writeFileSync(f, "");
    truncateSync(f, size);
    return f;
  };

  /** How to start each server on a unix socket or a TCP port. */
  const launch = {
    nbdkit: (file: string, where: { sock?: string; port?: number }): [string, string[]] =>
      where.sock ? ["nbdkit", ["-f", "-U", where.sock, "file", file]] : ["nbdkit", ["-f", "-i", "127.0.0.1", "-p", String(where.port), "file", file]],
    "qemu-nbd": (file: string, where: { sock?: string; port?: number }): [string, string[]] =>
      where.sock
        ? ["qemu-nbd", ["-f", "raw", "-t", "-e", "8", "-k", where.sock, file]]
        : ["qemu-nbd", ["-f", "raw", "-t", "-e", "8", "-b", "127.0.0.1", "-p", String(where.port), file]],
  } as const;

  /** Starts the server and waits until it takes connections. */
  const up = (kind: keyof typeof launch, file: string, where: ListenAt) => startListening(...launch[kind](file, where), where, servers);
  const cases = (["nbdkit", "qemu-nbd"] as const).flatMap((kind) =>
    (["unix", "tcp"] as const).flatMap((transport) => (["SIGTERM", "SIGKILL"] as const).map((signal) => [kind, transport, signal] as const)),
  );

  it.each(cases)(
    "%s over %s, stopped with %s and started again while verified I/O runs on two queues: no error, no mismatch, each request completed once",
    async (kind, transport, signal) => {
      if (!(kind === "nbdkit" ? NBDKIT : QEMU_NBD)) return void console.warn(`skipped: ${kind} is not installed`);
      const file = rawImage(BLOCKS * 512);
      const where = transport === "unix" ? { sock: join(dir, `r-${Math.random()}.sock`) } : { port: await freePort() };
      const uri = where.sock ? `nbd+unix:///?socket=${where.sock}` : `nbd://127.0.0.1:${where.port}/`;
      const first = await up(kind, file, where);
      let finished = false;
      const run = stress({ luns: [{ backstore: "nbd", uri }], queues: 2, queueSize: 64 }, 4).finally(() => (finished = true));
      await new Promise((r) => setTimeout(r, 300));
      // A routine restart: stop, wait for the old process to be gone, start again on the same address.
      expect(finished).toBe(false);
      first.kill(signal);
      await new Promise((r) => first.once("exit", r));
      await new Promise((r) => setTimeout(r, 300));
      await up(kind, file, where);
      expect(await run).toMatchObject({ mismatches: 0, failed: 0 });
    },
  );

  it.skipIf(!NBDKIT)(
    "nbdkit's error filter answering NBD_ESHUTDOWN now and then (structured replies): every request is carried out once, nothing fails",
    async () => {
      const file = rawImage(BLOCKS * 512);
      const sock = join(dir, `e-${Math.random()}.sock`);
      await start("nbdkit", ["-f", "-U", sock, "--filter=error", "file", file, "error=ESHUTDOWN", "error-rate=2%"], sock);
      expect(await stress({ luns: [{ backstore: "nbd", uri: `nbd+unix:///?socket=${sock}` }], queues: 2, queueSize: 64 }, 4)).toMatchObject({
        mismatches: 0,
        failed: 0,
      });
    },
  );

  it("NBD_ESHUTDOWN in a simple reply: NBD_CMD_DISC on that connection, the request sent again on a new one, once", async () => {
    let refuse = 3;
    const s = new FakeNbdServer({ size: 1 << 20, script: (r) => (r.type === 1 && refuse-- > 0 ? { reply: "error", errno: 108 } : undefined) });
    await s.listen();
    servers.push(s);
    const t = await lun0({ backstore: "nbd", uri: s.uri });
    const before = s.requests.filter((r) => r.type === 1).length;
    const results = await Promise.all([3, 4, 5].map((lba) => t.driver.command({ lun: 0, cdb: write16(lba, 1), dataOut: block(lba) })));
    for (const r of results) expectGood(r);
    for (const lba of [3, 4, 5]) expect(s.image.subarray(lba * 512, lba * 512 + 512).equals(Buffer.from(block(lba)))).toBe(true);
    // Three refused, each sent again once it was refused: six writes reached the server.
    expect(s.requests.filter((r) => r.type === 1).length - before).toBe(6);
    expect(s.discs).toBeGreaterThanOrEqual(1);
  });

  it("both connections refused (NBD_ESHUTDOWN), both replaced, then the old one with a request in flight ends: that request goes again", async () => {
    // Two connections (multi-conn). A: the read of block 1 is never answered, block 3 is refused;
    // B: block 2 is refused. Both end softly, a reconnect fills both slots, and A ends later with
    // block 1 still in flight, when every slot holds a live connection: it must be sent again, and
    // the backstore must go on taking requests.
    const seen = new Map<number, number>();
    const s = new FakeNbdServer({
      size: 1 << 20,
      flags: 1 << 8, // NBD_FLAG_CAN_MULTI_CONN
      ignoreDisc: true,
      script: (r) => {
        const lba = r.offset / 512;
        const n = (seen.get(lba) ?? 0) + 1;
        seen.set(lba, n);
        if (r.type !== 0 || n > 1) return undefined;
        return lba === 1 ? { reply: "silence" } : { reply: "error", errno: 108 };
      },
    });
    await s.listen();
    servers.push(s);
    for (const lba of [1, 2, 3]) s.image.set(block(lba), lba * 512);
    // One request queue: the three reads reach the backstore in order, so that round robin puts
    // blocks 1 and 3 on one connection and block 2 on the other. (On two queues block 2 could come
    // first, leave block 1 alone on a connection that is never refused, and wait for the timeout.)
    const t = await lun0({ backstore: "nbd", uri: s.uri, connections: 2, timeoutMs: 120_000 }, 1);
    const results = await Promise.all([1, 2, 3].map((lba) => t.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })));
    results.forEach((r, i) => {
      expectGood(r);
      expect(Buffer.from(r.dataIn).equals(Buffer.from(block(i + 1)))).toBe(true);
    });
    expect(seen.get(1)).toBe(2);
    // And the backstore still takes requests afterwards.
    const after = await t.driver.command({ lun: 0, cdb: read16(2, 1), dataInLength: 512 });
    expectGood(after);
    expect(Buffer.from(after.dataIn).equals(Buffer.from(block(2)))).toBe(true);
  }, 15_000);

  it("a server that takes NBD_CMD_DISC but neither answers what is in flight nor closes: those requests go again after a short wait", async () => {
    let step = 0;
    const s = new FakeNbdServer({
      size: 1 << 20,
      ignoreDisc: true,
      // The first read is never answered; the second is refused (shutting down); later ones are served.
      script: (r) => (r.type !== 0 ? undefined : step++ === 0 ? { reply: "silence" } : step === 2 ? { reply: "error", errno: 108 } : undefined),
    });
    await s.listen();
    servers.push(s);
    s.image.set(block(1), 512);
    s.image.set(block(2), 1024);
    // A merely slow server would be given two minutes, longer than the test may take.
    const t = await lun0({ backstore: "nbd", uri: s.uri, timeoutMs: 120_000 });
    const [a, b] = await Promise.all([1, 2].map((lba) => t.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })));
    expectGood(a);
    expectGood(b);
    expect(Buffer.from(a.dataIn).equals(Buffer.from(block(1)))).toBe(true);
    expect(Buffer.from(b.dataIn).equals(Buffer.from(block(2)))).toBe(true);
  });

  it.skipIf(!PYTHON)("a listener that never answers (a server on its way out, its socket still held) does not use up the reconnect window", async () => {
    const sock = join(dir, `g-${Math.random()}.sock`);
    const first = new FakeNbdServer({ size: 1 << 20, socketPath: sock });
    await first.listen();
    servers.push(first);
    const t = await lun0({ backstore: "nbd", uri: `nbd+unix:///?socket=${sock}`, reconnectMs: 6000 });
    // The server goes; a process takes its socket, listens and never accepts (connections wait in
    // its backlog) for 20 s. 1.5 s later a new server replaces the socket's path, as a restarted
    // server removes a stale one.
    await first.close();
    const mute = spawn(
      "python3",
      ["-c", `import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind(${JSON.stringify(sock)})\ns.listen(64)\ntime.sleep(20)`],
      { stdio: "ignore" },
    );
    servers.push(mute);
    await until(() => existsSync(sock), 5000);
    const pending = t.driver.command({ lun: 0, cdb: read16(9, 1), dataInLength: 512 });
    await new Promise((r) => setTimeout(r, 1500));
    rmSync(sock);
    const second = new FakeNbdServer({ size: 1 << 20, socketPath: sock });
    second.image.set(block(9), 9 * 512);
    await second.listen();
    servers.push(second);
    const r = await pending;
    expectGood(r);
    expect(Buffer.from(r.dataIn).equals(Buffer.from(block(9)))).toBe(true);
  });

  it("a server that never comes back: the requests fail after reconnectMs as a transport failure, and nothing hangs", async () => {
    const s = new FakeNbdServer({ size: 1 << 20 });
    await s.listen();
    servers.push(s);
    const t = await lun0({ backstore: "nbd", uri: s.uri, reconnectMs: 800 });
    await s.close();
    const results = await Promise.all([0, 1, 2].map((lba) => t.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 })));
    for (const r of results) expect(r.response).toBe(VIRTIO_SCSI_S_TRANSPORT_FAILURE);
  });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));
