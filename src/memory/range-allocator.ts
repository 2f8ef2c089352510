/** One allocation: its offset, size and what it holds. */
export interface Allocation {
  readonly start: number;
  readonly size: number;
  readonly owner: string;
}

/**
 * First-fit allocator over a range of byte offsets, used for the device-private heap and for
 * guest RAM. It hands out offsets only; the memory itself is the shared WebAssembly.Memory.
 */
export class RangeAllocator {
  /** Free extents, sorted by start, never adjacent (merged on free). */
  private free: { start: number; end: number }[];
  private readonly used = new Map<number, { size: number; owner: string }>();

  constructor(
    readonly start: number,
    readonly end: number,
  ) {
    if (!(start >= 0 && end >= start)) throw new RangeError(`bad range [${start}, ${end})`);
    this.free = end > start ? [{ start, end }] : [];
  }

  /**
   * Allocates size bytes aligned to align (a power of two); throws RangeError when full. `owner`
   * names what the bytes hold, for allocations().
   */
  alloc(size: number, align = 16, owner = ""): number {
    if (!(size > 0) || !Number.isSafeInteger(size)) throw new RangeError(`bad allocation size ${size}`);
    if (align <= 0 || (align & (align - 1)) !== 0) throw new RangeError(`alignment ${align} is not a power of two`);
    for (let i = 0; i < this.free.length; i++) {
      const ext = this.free[i];
      const at = Math.ceil(ext.start / align) * align;
      if (at + size > ext.end) continue;
      const pieces: { start: number; end: number }[] = [];
      if (at > ext.start) pieces.push({ start: ext.start, end: at });
      if (at + size < ext.end) pieces.push({ start: at + size, end: ext.end });
      this.free.splice(i, 1, ...pieces);
      this.used.set(at, { size, owner });
      return at;
    }
    throw new RangeError(`out of memory: no ${size} bytes (align ${align}) free in [${this.start}, ${this.end})`);
  }

  /** An allocator over the same range with the same allocations (another memory laid out as this one). */
  clone(): RangeAllocator {
    const c = new RangeAllocator(this.start, this.end);
    c.free = this.free.map((e) => ({ ...e }));
    for (const [at, u] of this.used) c.used.set(at, { ...u });
    return c;
  }

  /** Returns an allocation made by alloc(). */
  release(offset: number): void {
    const size = this.used.get(offset)?.size;
    if (size === undefined) throw new RangeError(`offset ${offset} was not allocated here`);
    this.used.delete(offset);
    let ext = { start: offset, end: offset + size };
    let i = this.free.findIndex((e) => e.start > offset);
    if (i < 0) i = this.free.length;
    const prev = this.free[i - 1];
    const next = this.free[i];
    if (next && next.start === ext.end) {
      ext = { start: ext.start, end: next.end };
      this.free.splice(i, 1);
    }
    if (prev && prev.end === ext.start) {
      prev.end = ext.end;
    } else {
      this.free.splice(i, 0, ext);
    }
  }

  /** What is allocated now, in address order: a snapshot (auditing memory, looking for stray writes). */
  allocations(): readonly Allocation[] {
    return [...this.used].map(([start, u]) => ({ start, size: u.size, owner: u.owner })).sort((a, b) => a.start - b.start);
  }

  /** Bytes currently free. */
  get available(): number {
    return this.free.reduce((sum, e) => sum + (e.end - e.start), 0);
  }
}
