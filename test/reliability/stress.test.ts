// Data integrity under load: several submitters on several queues served by several vhost
// workers, random reads and writes of random sizes over overlapping LBAs, every block stamped
// with its LBA, a generation and a checksum, checked against a model of the disk. Every
// command completes exactly once; no read returns anything but the last data written.
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BLOCKS, OPS, stress } from "../helpers/stress.js";
import { nodeFileOps, type FileOps } from "../../src/backstore/file.js";

const dir = mkdtempSync(join(tmpdir(), "vhost-scsi-stress-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("data integrity under concurrent load", () => {
  it("RAM disk: 6 submitters, 3 queues, 2 worker threads: every block read back as last written", async () => {
    const r = await stress({ luns: [{ backstore: "ram", size: BLOCKS * 512 }], queues: 3, workers: 2, queueSize: 64 }, 6);
    expect(r).toMatchObject({ mismatches: 0, failed: 0 });
    expect(r.ops).toBe(OPS);
    expect(r.blocksChecked).toBeGreaterThan(OPS);
  });

  it("file backstore: 4 submitters, 2 queues, 2 worker threads", async () => {
    const r = await stress({ luns: [{ backstore: "file", path: join(dir, "a.img"), size: BLOCKS * 512 }], queues: 2, workers: 2, queueSize: 64 }, 4);
    expect(r).toMatchObject({ mismatches: 0, failed: 0 });
    expect(r.blocksChecked).toBeGreaterThan(OPS);
  });

  it("file backstore with injected I/O errors and short transfers: failures are MEDIUM ERROR, the rest stays exact", async () => {
    let seed = 99;
    const chance = (p: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % 1000 < p * 1000;
    const faulty: FileOps = {
      readv: (fd, v, pos) => {
        if (chance(0.02)) throw new Error("EIO");
        return chance(0.1) ? nodeFileOps.readv(fd, [v[0].subarray(0, Math.max(1, v[0].length >> 1))], pos) : nodeFileOps.readv(fd, v, pos);
      },
      writev: (fd, v, pos) => {
        if (chance(0.02)) throw new Error("EIO");
        return chance(0.1) ? nodeFileOps.writev(fd, [v[0].subarray(0, Math.max(1, v[0].length >> 1))], pos) : nodeFileOps.writev(fd, v, pos);
      },
      fdatasync: (fd) => nodeFileOps.fdatasync(fd),
    };
    const r = await stress({ luns: [{ backstore: "file", path: join(dir, "b.img"), size: BLOCKS * 512, ops: faulty }], queues: 2, queueSize: 64 }, 4);
    expect(r.mismatches).toBe(0);
    expect(r.failed).toBeGreaterThan(0);
    expect(r.blocksChecked).toBeGreaterThan(OPS / 2);
  });
});
