// The README's layout table is the architecture: src/ folders are listed so that each imports
// only folders listed above it, which is what the build's cycle check (scripts/layering.mjs)
// keeps true of the code.
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error: a plain ES module of the build, without declarations
import { checkAssemblyLayering, checkFolderLayering, folderGraph } from "../scripts/layering.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("folders as layers", () => {
  it("every src/ folder is in the README's layout table, and imports only folders listed above it", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const table = readme.slice(readme.indexOf("## Layout"));
    const order = [...table.matchAll(/^\| `src\/([a-z0-9-]+)\/` \|/gm)].map((m) => m[1]);
    const graph = folderGraph(join(root, "src")) as Map<string, Map<string, string>>;
    expect([...graph.keys()].sort()).toEqual([...order].sort());
    for (const [from, tos] of graph)
      for (const [to, how] of tos) expect([how, order.indexOf(to)]).toEqual([how, expect.toSatisfy((i: number) => i >= 0 && i < order.indexOf(from))]);
  });

  it("a cycle between folders fails the build and names the imports that make it", () => {
    const src = mkdtempSync(join(tmpdir(), "layers-"));
    try {
      mkdirSync(join(src, "a"));
      mkdirSync(join(src, "b"));
      writeFileSync(join(src, "a", "x.ts"), 'import { y } from "../b/y.js";\nexport const x = y;\n');
      writeFileSync(join(src, "b", "y.ts"), "export const y = 1;\n");
      expect(() => checkFolderLayering(src)).not.toThrow();
      writeFileSync(join(src, "b", "z.ts"), 'import { x } from "../a/x.js";\nexport const z = x;\n');
      expect(() => checkFolderLayering(src)).toThrow(/a -> b -> a[\s\S]*src\/a\/x.ts -> ..\/b\/y.js[\s\S]*src\/b\/z.ts -> ..\/a\/x.js/);
    } finally {
      rmSync(src, { recursive: true, force: true });
    }
  });

  it("assembly/ runs one way: the core imports no device's file, and no file imports itself back", () => {
    expect(() => checkAssemblyLayering(join(root, "assembly"))).not.toThrow();
    const asm = mkdtempSync(join(tmpdir(), "asm-layers-"));
    try {
      mkdirSync(join(asm, "scsi"));
      writeFileSync(join(asm, "queue.ts"), "export const q = 1;\n");
      writeFileSync(join(asm, "scsi", "a.ts"), 'import { q } from "../queue";\nimport { b } from "./b";\nexport const a = q + b;\n');
      writeFileSync(join(asm, "scsi", "b.ts"), "export const b = 2;\n");
      writeFileSync(join(asm, "index.ts"), 'export { a } from "./scsi/a";\n');
      expect(() => checkAssemblyLayering(asm)).not.toThrow();
      writeFileSync(join(asm, "scsi", "b.ts"), 'import { a } from "./a";\nexport const b = 2;\n');
      expect(() => checkAssemblyLayering(asm)).toThrow(/cycle: scsi\/a.ts -> scsi\/b.ts -> scsi\/a.ts[\s\S]*assembly\/scsi\/b.ts -> .\/a/);
      writeFileSync(join(asm, "scsi", "b.ts"), "export const b = 2;\n");
      writeFileSync(join(asm, "queue.ts"), 'import { b } from "./scsi/b";\nexport const q = b;\n');
      expect(() => checkAssemblyLayering(asm)).toThrow("assembly/queue.ts is the core and imports a device's file: assembly/queue.ts -> ./scsi/b");
    } finally {
      rmSync(asm, { recursive: true, force: true });
    }
  });
});
