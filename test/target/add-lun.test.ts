// Adding a LUN from the library: any backstore type, opened asynchronously where it must be
// (a storage server), and nothing left behind when it fails: no open connection, no new file,
// no allocation; configs checked before anything is opened, errors that name the fix.
import { afterAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestbed } from "../../src/testbed.js";
import { openBackstoreSync } from "../../src/backstore/index.js";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { commandRetryingUA } from "../../src/guest/scan.js";
import { read16 } from "../../src/guest/scsi-commands.js";
import { FakeNbdServer } from "../helpers/nbd-server.js";

const dir = mkdtempSync(join(tmpdir(), "add-lun-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("Tpg.addLun", () => {
  it("opens an NBD LUN asynchronously and serves it; a LUN number in use is refused before any connection", async () => {
    const server = new FakeNbdServer({ size: 1 << 20 });
    await server.listen();
    const bed = await createTestbed();
    try {
      const lun = await bed.tpg.addLun(1, { backstore: "nbd", uri: server.uri });
      expect(lun.backstore.size).toBe(1 << 20);
      server.image.fill(0xab, 0, 4096);
      const r = await commandRetryingUA(bed.driver, { lun: 1, cdb: read16(0, 8), dataInLength: 4096 });
      expect(r.status).toBe(0);
      expect(r.dataIn.every((b) => b === 0xab)).toBe(true);
      const connections = server.connections.size;
      await expect(bed.tpg.addLun(1, { backstore: "nbd", uri: server.uri })).rejects.toThrow("LUN 1 exists in TPG 1");
      expect(server.connections.size).toBe(connections);
      await bed.tpg.removeLun(1);
    } finally {
      await bed.close();
      await server.close();
    }
  });

  it("a server that is not there: the promise rejects and nothing stays open", async () => {
    const bed = await createTestbed();
    try {
      await expect(bed.tpg.addLun(1, { backstore: "nbd", uri: `nbd+unix:///?socket=${join(dir, "none.sock")}` })).rejects.toThrow(/nbd nbd\+unix/);
      expect(bed.tpg.lunIds).toEqual([0]);
    } finally {
      await bed.close();
    }
  });

  it("openBackstoreSync refuses a type that opens asynchronously before connecting", async () => {
    const server = new FakeNbdServer({ size: 1 << 20 });
    await server.listen();
    try {
      const shm = SharedMemory.create({ deviceBytes: 1 << 20, guestBytes: 0 });
      expect(() => openBackstoreSync({ backstore: "nbd", uri: server.uri }, shm)).toThrow(
        "backstore nbd opens asynchronously: use await openBackstore() or await tpg.addLun()",
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(server.connections.size).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("a file LUN that cannot be made leaves no file behind", async () => {
    const bed = await createTestbed();
    try {
      const missing = join(dir, "missing.img");
      await expect(bed.tpg.addLun(1, { backstore: "file", path: missing })).rejects.toThrow(/ENOENT/);
      // A size that is no whole number of blocks is refused before the file is made.
      await expect(bed.tpg.addLun(1, { backstore: "file", path: missing, size: 1000 })).rejects.toThrow(
        "size 1000 is not a positive multiple of its 512-byte block size",
      );
      expect(existsSync(missing)).toBe(false);
      // A size given makes the file, as documented.
      const lun = await bed.tpg.addLun(1, { backstore: "file", path: missing, size: 1 << 20 });
      expect(lun.backstore.size).toBe(1 << 20);
      await bed.tpg.removeLun(1);
    } finally {
      await bed.close();
    }
  });

  it("a RAM LUN that does not fit the device heap names the option that makes room", async () => {
    const bed = await createTestbed({ deviceMemory: 4 << 20 });
    try {
      await expect(bed.tpg.addLun(1, { backstore: "ram", size: 32 << 20 })).rejects.toThrow(/does not fit the device heap .*deviceMemory/);
      expect(bed.tpg.lunIds).toEqual([0]);
      // The heap has room again for what fits.
      await bed.tpg.addLun(1, { backstore: "ram", size: 1 << 20 });
    } finally {
      await bed.close();
    }
  });
});

describe("createTestbed", () => {
  it("checks a RAM LUN's size before making memory for it", async () => {
    await expect(createTestbed({ luns: [{ backstore: "ram" } as never] })).rejects.toThrow(
      "a ram backstore needs size: a positive multiple of its 512-byte block size (given: undefined)",
    );
    await expect(createTestbed({ luns: [{ backstore: "ram", size: 1000 }] })).rejects.toThrow("(given: 1000)");
  });

  it("takes down what it made when a LUN fails, the backstores it was given opened included", async () => {
    const server = new FakeNbdServer({ size: 1 << 20 });
    await server.listen();
    try {
      const { NbdBackstore } = await import("../../src/backstore/nbd.js");
      const given = await NbdBackstore.connect({ uri: server.uri });
      expect(server.connections.size).toBeGreaterThan(0);
      await expect(createTestbed({ luns: [{ backstore: "file", path: join(dir, "nope", "x.img") }, { backstore: given }] })).rejects.toThrow(/ENOENT/);
      await new Promise((r) => setTimeout(r, 50));
      expect(server.connections.size).toBe(0);
    } finally {
      await server.close();
    }
  });
});
