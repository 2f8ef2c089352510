// Rewriting a WebAssembly module so that its memory is an imported shared memory: v86's own
// module defines its memory, and the modules its JIT generates import a non-shared one; both
// must use the one shared WebAssembly.Memory the data plane works on (WebAssembly binary
// format: sections, import entries, memory limits; flag 3 = shared with a maximum).

const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const KIND_FUNC = 0;
const KIND_TABLE = 1;
const KIND_MEMORY = 2;
const KIND_GLOBAL = 3;
const KIND_TAG = 4;
const LIMITS_SHARED_MAX = 3;

/** A cursor over module bytes. */
class Reader {
  constructor(
    readonly b: Uint8Array,
    public at = 0,
  ) {}
  u8(): number {
    if (this.at >= this.b.length) throw new Error("wasm: unexpected end of module");
    return this.b[this.at++];
  }
  leb(): number {
    let v = 0;
    let shift = 0;
    for (;;) {
      const byte = this.u8();
      v += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return v;
      shift += 7;
      if (shift > 35) throw new Error("wasm: LEB128 too long");
    }
  }
  bytes(n: number): Uint8Array {
    if (this.at + n > this.b.length) throw new Error("wasm: unexpected end of module");
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  name(): string {
    return new TextDecoder().decode(this.bytes(this.leb()));
  }
  /** Skips limits; returns them. */
  limits(): { flags: number; min: number; max?: number } {
    const flags = this.u8();
    const min = this.leb();
    return flags & 1 ? { flags, min, max: this.leb() } : { flags, min };
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function nameBytes(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...leb(b.length), ...b];
}

/** The memory a module defines or imports: its limits, and where (imported: module and name). */
export interface ModuleMemory {
  min: number;
  max: number | undefined;
  shared: boolean;
  import?: { module: string; name: string };
}

/** Reads the one memory of a module (defined or imported). */
export function moduleMemory(bytes: Uint8Array): ModuleMemory | undefined {
  let found: ModuleMemory | undefined;
  forEachSection(bytes, (id, body) => {
    if (id === SECTION_IMPORT) {
      for (const e of readImports(body)) {
        if (e.kind === KIND_MEMORY)
          found = { min: e.limits!.min, max: e.limits!.max, shared: (e.limits!.flags & 2) !== 0, import: { module: e.module, name: e.name } };
      }
    } else if (id === SECTION_MEMORY) {
      const r = new Reader(body);
      if (r.leb() > 0) {
        const l = r.limits();
        found = { min: l.min, max: l.max, shared: (l.flags & 2) !== 0 };
      }
    }
  });
  return found;
}

function forEachSection(bytes: Uint8Array, fn: (id: number, body: Uint8Array, start: number, end: number) => void): void {
  const r = new Reader(bytes, 8);
  if (bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) throw new Error("not a WebAssembly module");
  while (r.at < bytes.length) {
    const start = r.at;
    const id = r.u8();
    const size = r.leb();
    const bodyAt = r.at;
    const body = r.bytes(size);
    fn(id, body, start, bodyAt + size);
  }
}

interface ImportEntry {
  module: string;
  name: string;
  kind: number;
  /** The entry's encoded bytes. */
  raw: Uint8Array;
  limits?: { flags: number; min: number; max?: number };
}

function readImports(body: Uint8Array): ImportEntry[] {
  const r = new Reader(body);
  const n = r.leb();
  const out: ImportEntry[] = [];
  for (let i = 0; i < n; i++) {
    const start = r.at;
    const module = r.name();
    const name = r.name();
    const kind = r.u8();
    let limits: ImportEntry["limits"];
    if (kind === KIND_FUNC) r.leb();
    else if (kind === KIND_TABLE) {
      r.u8();
      r.limits();
    } else if (kind === KIND_MEMORY) limits = r.limits();
    else if (kind === KIND_GLOBAL) {
      r.u8();
      r.u8();
    } else if (kind === KIND_TAG) {
      r.u8();
      r.leb();
    } else throw new Error(`wasm: unknown import kind ${kind}`);
    out.push({ module, name, kind, raw: body.subarray(start, r.at), limits });
  }
  return out;
}

/**
 * The module rewritten to import its memory as `module`.`name`, shared, with limits min..max
 * pages: a defined memory becomes that import; an imported one gets those limits. Everything
 * else is kept byte for byte (the memory stays index 0, so exports and data segments still
 * refer to it).
 */
export function importSharedMemory(bytes: Uint8Array, module: string, name: string, min: number, max: number): Uint8Array {
  const memoryImport = Uint8Array.from([...nameBytes(module), ...nameBytes(name), KIND_MEMORY, LIMITS_SHARED_MAX, ...leb(min), ...leb(max)]);
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  const section = (id: number, body: Uint8Array[]) => {
    const size = body.reduce((n, b) => n + b.length, 0);
    parts.push(Uint8Array.from([id, ...leb(size)]), ...body);
  };
  let imported = false;
  forEachSection(bytes, (id, body) => {
    if (id === SECTION_MEMORY) return; // dropped: the memory is imported instead
    if (id === SECTION_IMPORT) {
      const kept = readImports(body).filter((e) => e.kind !== KIND_MEMORY);
      section(id, [Uint8Array.from(leb(kept.length + 1)), memoryImport, ...kept.map((e) => e.raw)]);
      imported = true;
      return;
    }
    // Without an import section, one goes before the first section that must follow it.
    if (id > SECTION_IMPORT && !imported) {
      section(SECTION_IMPORT, [Uint8Array.from(leb(1)), memoryImport]);
      imported = true;
    }
    section(id, [body]);
  });
  if (!imported) section(SECTION_IMPORT, [Uint8Array.from(leb(1)), memoryImport]);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
