// The interface between the two languages is generated from assembly/ (scripts/abi.mjs): the
// constants the TypeScript side sees are the compiled module's, the export lists match the
// modules, test devices stay out of the production build, and a hand copy fails the build.
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataplaneModule, dataplaneTestModule } from "../../src/wasm/dataplane.js";
import * as abi from "../../src/wasm/abi.generated.js";
// @ts-expect-error: a plain ES module of the build, without declarations
import { checkNoHandCopies } from "../../scripts/abi.mjs";

const exportNames = (m: WebAssembly.Module, kind: string) =>
  WebAssembly.Module.exports(m)
    .filter((e) => e.kind === kind)
    .map((e) => e.name);
const instance = (m: WebAssembly.Module) =>
  new WebAssembly.Instance(m, { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }) } }).exports;

describe("the generated ABI", () => {
  it("every constant the module computes and exports has the module's value", () => {
    const ex = instance(dataplaneModule());
    const globals = exportNames(dataplaneModule(), "global");
    expect(globals.length).toBeGreaterThan(15);
    for (const g of globals) expect([g, (abi as Record<string, unknown>)[g]]).toEqual([g, (ex[g] as WebAssembly.Global).value]);
  });

  it("carries the spec constants as assembly/ writes them", () => {
    expect([abi.VRING_DESC_F_NEXT, abi.VRING_DESC_F_WRITE, abi.VRING_DESC_F_INDIRECT]).toEqual([1, 2, 4]);
    expect([abi.VIRTIO_SCSI_CDB_SIZE, abi.VIRTIO_SCSI_SENSE_SIZE, abi.VIRTIO_SCSI_T_EVENTS_MISSED]).toEqual([32, 96, 0x80000000]);
    expect(abi.VQ_NO_HEAD).toBe(0xffffffff);
  });

  it("the production build has no test devices; the test build has them and everything else", () => {
    const prod = exportNames(dataplaneModule(), "function");
    const test = exportNames(dataplaneTestModule(), "function");
    for (const f of ["echo_drain", "null_drain", "vq_pop", "chain_iov_ptr", "scsi_opcode_count"]) {
      expect(prod).not.toContain(f);
      expect(test).toContain(f);
    }
    for (const f of prod) expect(test).toContain(f);
  });

  it("a constant defined again by hand outside src/wasm/ fails the build", () => {
    const root = mkdtempSync(join(tmpdir(), "abi-"));
    try {
      mkdirSync(join(root, "src", "virtio"), { recursive: true });
      writeFileSync(join(root, "src", "virtio", "ring.ts"), "export const VRING_DESC_F_NEXT = 1;\n");
      expect(() => checkNoHandCopies(root, ["VRING_DESC_F_NEXT"], ["src"], ["src/wasm/"])).toThrow(/src\/virtio\/ring.ts: VRING_DESC_F_NEXT/);
      writeFileSync(join(root, "src", "virtio", "ring.ts"), 'export { VRING_DESC_F_NEXT } from "../wasm/abi.generated.js";\n');
      expect(() => checkNoHandCopies(root, ["VRING_DESC_F_NEXT"], ["src"], ["src/wasm/"])).not.toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
