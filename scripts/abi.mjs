// The one interface between AssemblyScript and TypeScript, generated: the constants written in
// assembly/ (`export const NAME: type = expr;`, evaluated here, or read from the compiled
// module's exported globals where the compiler computes them, e.g. offsetof) and the module's
// export signatures (from asc's --bindings raw declarations), written as a TypeScript module.
// The TypeScript side imports them from there and nowhere else; checkNoHandCopies() fails the
// build when a TypeScript file defines one of these names itself.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const INT_TYPES = { u8: "u", u16: "u", u32: "u", usize: "u", i8: "i", i16: "i", i32: "i", isize: "i", u64: "w", i64: "w", f32: "f", f64: "f", bool: "b" };

/** The doc comment that ends right before `at` in `text`, or a trailing `// ...` on the line. */
function docBefore(text, at) {
  const m = /\/\*\*((?:[^*]|\*(?!\/))*)\*\/\s*$/.exec(text.slice(Math.max(0, at - 2000), at));
  if (!m) return undefined;
  return m[1]
    .split("\n")
    .map((l) => l.replace(/^\s*\* ?/, "").trim())
    .filter(Boolean)
    .join(" ");
}

/** Every `export const` of the AssemblyScript sources ({ file, text }): name, type, expression, doc, file. */
function declaredConstants(sources) {
  const out = [];
  for (const { file, text } of sources) {
    const re = /^export const (\w+)\s*:\s*(\w+)\s*=\s*([^;]+);[ \t]*(?:\/\/ *(.*))?$/gm;
    for (let m; (m = re.exec(text)); ) out.push({ file, name: m[1], type: m[2], expr: m[3].trim(), doc: docBefore(text, m.index) ?? m[4]?.trim() });
  }
  return out;
}

/** The value of a constant expression over literals and other constants, or undefined. */
function evaluate(expr, known) {
  const js = expr.replace(/<\w+>/g, "").replace(/\b([A-Za-z_]\w*)\b/g, (id) => (known.has(id) ? `(${known.get(id)})` : `#${id}`));
  if (js.includes("#") || !/^[\d\sxa-fA-F+\-*/%()<>&|^~.]+$/.test(js)) return undefined;
  try {
    return Function(`"use strict"; return (${js});`)();
  } catch {
    return undefined;
  }
}

/** Converts a JS number to the value an AssemblyScript constant of `type` has. */
function asType(v, type) {
  switch (INT_TYPES[type]) {
    case "u":
      return v >>> 0;
    case "i":
      return v | 0;
    case "b":
      return v ? 1 : 0;
    default:
      return Number.isSafeInteger(v) || INT_TYPES[type] === "f" ? v : undefined;
  }
}

/** The TypeScript parameter and result types of the raw exports (u64 as bigint, bool results as 0/1). */
const tsParam = (t) => (INT_TYPES[t] === "w" ? "bigint" : t === "bool" ? "boolean" : "number");
const tsResult = (t) => (t === undefined ? "void" : INT_TYPES[t] === "w" ? "bigint" : "number");

/** The export list of a module from asc's --bindings raw declarations, with the source's doc comments. */
function exportSignatures(dts, sources, exclude) {
  const funcs = [];
  const globals = [];
  const blockRe = /\/\*\*((?:[^*]|\*(?!\/))*)\*\/\s*export function (\w+)\(([^)]*)\)/g;
  for (let m; (m = blockRe.exec(dts)); ) {
    const [, block, name, params] = m;
    if (exclude.has(name)) continue;
    const types = Object.fromEntries([...block.matchAll(/@param (\w+) `([^`]+)`/g)].map((p) => [p[1], p[2]]));
    const ret = /@returns `([^`]+)`/.exec(block)?.[1];
    const args = params
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p) => {
        const n = p.split(":")[0].trim();
        return `${n}: ${tsParam(types[n])}`;
      });
    const at = sources.map(({ text }) => [text, text.search(new RegExp(`^export function ${name}\\b`, "m"))]).find(([, i]) => i >= 0);
    const doc = at && docBefore(at[0], at[1]);
    funcs.push({ name, sig: `${name}(${args.join(", ")}): ${tsResult(ret)};`, doc, ret });
  }
  for (const m of dts.matchAll(/export const (\w+): \{/g)) if (!exclude.has(m[1])) globals.push(m[1]);
  return { funcs, globals };
}

const comment = (doc, indent = "") => (doc ? `${indent}/** ${doc.replace(/\*\//g, "* /")} */\n` : "");

/**
 * The TypeScript module of one interface: the constants of `sourceFiles` (assembly/ paths), then
 * for each of `interfaces` ({ dts: asc's declarations, iface: the name, doc, extendsIface: an
 * interface written before it, whose exports it leaves out}) the export list. `wasm` is the
 * compiled module whose exported globals give the constants the source computes.
 */
export function generateAbi({ root, sourceFiles, interfaces, wasm }) {
  const sources = sourceFiles.map((file) => ({ file, text: readFileSync(join(root, file), "utf8") }));
  const declared = declaredConstants(sources);
  const known = new Map();
  // Exported globals of the module: the compiler's values for what the source computes.
  const instance = new WebAssembly.Instance(wasm, {
    env: { memory: new WebAssembly.Memory({ initial: 1024, maximum: 65536, shared: true }), abort() {} },
  });
  const globals = new Map(
    Object.entries(instance.exports)
      .filter(([, v]) => v instanceof WebAssembly.Global)
      .map(([k, v]) => [k, v.value]),
  );
  for (let progress = true; progress; ) {
    progress = false;
    for (const c of declared) {
      if (known.has(c.name)) continue;
      const raw = globals.has(c.name) ? globals.get(c.name) : evaluate(c.expr, known);
      const v = raw === undefined ? undefined : asType(typeof raw === "bigint" ? Number(raw) : raw, c.type);
      if (v !== undefined) {
        known.set(c.name, v);
        progress = true;
      }
    }
  }
  const lines = [
    `// Generated by scripts/build.mjs from ${[...new Set(sourceFiles.map((f) => f.split("/").slice(0, -1).join("/")))].join(", ")}: do not edit.`,
    "// Each constant and export is written once, in AssemblyScript; this file is rewritten by every build.",
    "",
  ];
  let file;
  for (const c of declared) {
    if (!known.has(c.name)) continue;
    if (c.file !== file) lines.push(`${file ? "\n" : ""}// ${(file = c.file)}`);
    lines.push(`${comment(c.doc)}export const ${c.name} = ${known.get(c.name)};`);
  }
  const written = new Map();
  for (const { dts, iface, extendsIface, doc } of interfaces) {
    const { funcs, globals: gl } = exportSignatures(dts, sources, written.get(extendsIface) ?? new Set());
    written.set(iface, new Set([...funcs.map((f) => f.name), ...gl]));
    lines.push("", `${comment(doc)}export interface ${iface}${extendsIface ? ` extends ${extendsIface}` : ""} {`);
    for (const f of funcs) lines.push(`${comment(f.doc && f.doc + (f.ret === "bool" ? " (1 or 0)" : ""), "  ")}  ${f.sig}`);
    for (const g of gl) lines.push(`  ${g}: WebAssembly.Global;`);
    lines.push("}");
  }
  return { text: `${lines.join("\n").replace(/\n\n\n+/g, "\n\n")}\n`, names: [...known.keys()] };
}

/** TypeScript files under dirs (paths from root), but those under a `skip` prefix. */
function tsFiles(root, dirs, skip) {
  return dirs.flatMap((d) =>
    readdirSync(join(root, d), { recursive: true })
      .filter((f) => f.endsWith(".ts"))
      .map((f) => join(d, f))
      .filter((f) => !skip.some((s) => f.startsWith(s))),
  );
}

/** Fails when a TypeScript file outside `owners` defines an ABI name itself: a hand copy that could drift. */
export function checkNoHandCopies(root, names, dirs, owners) {
  const set = new Set(names);
  const copies = [];
  for (const f of tsFiles(root, dirs, owners)) {
    const text = readFileSync(join(root, f), "utf8");
    for (const m of text.matchAll(/\b(?:const|let|var)\s+([A-Z][A-Z0-9_]+)\s*[:=]/g)) if (set.has(m[1])) copies.push(`${f}: ${m[1]}`);
    for (const m of text.matchAll(/\binterface\s+(DataplaneExports|DataplaneTestExports|EngineExports)\b/g)) copies.push(`${f}: interface ${m[1]}`);
  }
  if (copies.length) throw new Error(`hand copies of data-plane ABI names (import them from the generated module instead):\n  ${copies.join("\n  ")}`);
}
