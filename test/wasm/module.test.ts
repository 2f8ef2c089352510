import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { dataplaneModule } from "../../src/wasm/dataplane.js";
import { STATIC_AREA_END } from "../../src/memory/shared-memory.js";
import { ScsiBench } from "../../src/testing/scsi-bed.js";
import { inquiry } from "../../src/guest/scsi-commands.js";

describe("the compiled data plane", () => {
  it("imports nothing but the shared memory", () => {
    expect(WebAssembly.Module.imports(dataplaneModule())).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
  });

  it("links no allocator (the build refuses one)", () => {
    const wat = readFileSync(new URL("../../dist/dataplane.wat", import.meta.url), "utf8");
    expect(wat).not.toMatch(/\$~lib\/rt\//);
  });

  it("leaves its static area untouched however many requests it serves (a regression found by the fuzzer)", () => {
    const b = new ScsiBench(64, 255, () => inquiry(255, 0x00), { backstore: "null", size: 1 << 20 });
    const before = b.tb.shm.bytes.slice(0, STATIC_AREA_END);
    for (let k = 0; k < 400; k++) b.run();
    b.check();
    expect(Buffer.from(b.tb.shm.bytes.subarray(0, STATIC_AREA_END)).equals(Buffer.from(before))).toBe(true);
  });
});
