// A program that uses the library and forgets `await bed.close()` still ends, as a Node program
// with idle sockets and timers unref'd does: vhost worker threads, I/O threads and idle storage
// connections only wait, and do not hold the process. A request in flight does hold it until it
// is answered.
import { afterAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakeNbdServer } from "./helpers/nbd-server.js";

const dir = mkdtempSync(join(tmpdir(), "process-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const lib = fileURLToPath(new URL("../dist/src/index.js", import.meta.url));
const wire = fileURLToPath(new URL("../dist/src/wire.js", import.meta.url));

/** Runs a module's text in a child process: its exit code, output and how long it took (killed after 20 s). */
function runScript(text: string): Promise<{ code: number | null; stdout: string; ms: number }> {
  const file = join(dir, `script-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, text);
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { timeout: 20_000, killSignal: "SIGKILL" }, (err, stdout) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, ms: Date.now() - t0 });
    });
  });
}

describe("a program that does not close its testbed", () => {
  it("ends by itself: worker threads, I/O threads and idle NBD connections do not hold it", async () => {
    const server = new FakeNbdServer({ size: 1 << 20 });
    await server.listen();
    const img = join(dir, "disk.img");
    writeFileSync(img, Buffer.alloc(1 << 20));
    try {
      const r = await runScript(`
        import { createTestbed, commandRetryingUA } from ${JSON.stringify(lib)};
        import { read16 } from ${JSON.stringify(wire)};
        const bed = await createTestbed({
          queues: 2,
          workers: 2,
          luns: [
            { backstore: "ram", size: 1 << 20 },
            { backstore: "file", path: ${JSON.stringify(img)}, ioThreads: 2 },
            { backstore: "nbd", uri: ${JSON.stringify(server.uri)} },
          ],
        });
        for (const lun of [0, 1, 2]) {
          const r = await commandRetryingUA(bed.driver, { lun, cdb: read16(0, 8), dataInLength: 4096 });
          console.log("lun", lun, "status", r.status);
        }
      `);
      expect(r.stdout).toBe("lun 0 status 0\nlun 1 status 0\nlun 2 status 0\n");
      expect(r.code).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("is held while a request is in flight, until it is answered", async () => {
    // Every read is answered 1.5 s late; nothing else keeps the child alive meanwhile.
    const server = new FakeNbdServer({ size: 1 << 20, script: (q) => (q.type === 0 && q.offset === 4096 ? { reply: "later", ms: 1500 } : undefined) });
    await server.listen();
    try {
      const r = await runScript(`
        import { createTestbed, commandRetryingUA } from ${JSON.stringify(lib)};
        import { read16 } from ${JSON.stringify(wire)};
        const bed = await createTestbed({ luns: [{ backstore: "nbd", uri: ${JSON.stringify(server.uri)} }] });
        await commandRetryingUA(bed.driver, { lun: 0, cdb: read16(0, 8), dataInLength: 4096 });
        void bed.driver.command({ lun: 0, cdb: read16(8, 8), dataInLength: 4096 }).then((r) => console.log("answered", r.status));
      `);
      expect(r.stdout).toBe("answered 0\n");
      expect(r.code).toBe(0);
      expect(r.ms).toBeGreaterThanOrEqual(1500);
    } finally {
      await server.close();
    }
  });
});
