// fio's latency histogram buckets, the scheme json+ `bins` and fio's percentiles use: values
// below 128 ns exactly; above, each power of two split into 64 equal buckets, 29 groups (to
// about 17 s), each bucket named by the middle of its range.
import type { Histogram } from "hdr-histogram-js";

const PLAT_BITS = 6;
const PLAT_VAL = 1 << PLAT_BITS;
const PLAT_NR = 29 * PLAT_VAL;

/** The bucket a value (ns) falls in. */
export function fioBucket(v: number): number {
  if (v < 2 * PLAT_VAL) return Math.max(0, Math.floor(v));
  const msb = Math.floor(Math.log2(v));
  const dropped = msb - PLAT_BITS;
  const idx = (dropped + 1) * PLAT_VAL + (Math.floor(v / 2 ** dropped) & (PLAT_VAL - 1));
  return Math.min(idx, PLAT_NR - 1);
}

/** The value a bucket stands for: the middle of its range (ns). */
export function fioBucketValue(idx: number): number {
  if (idx < 2 * PLAT_VAL) return idx;
  const dropped = Math.floor(idx / PLAT_VAL) - 1;
  return Math.floor(2 ** (dropped + PLAT_BITS) + ((idx % PLAT_VAL) + 0.5) * 2 ** dropped);
}

/** The HDR histogram's recorded values, each with its count (hdr.build's JavaScript histograms). */
export function* recorded(h: Histogram): Generator<{ value: number; count: number }> {
  const it = (
    h as unknown as {
      recordedValuesIterator: { reset(): void; hasNext(): boolean; next(): { valueIteratedTo: number; countAddedInThisIterationStep: number } };
    }
  ).recordedValuesIterator;
  it.reset();
  while (it.hasNext()) {
    const v = it.next();
    yield { value: v.valueIteratedTo, count: v.countAddedInThisIterationStep };
  }
}

/** json+ `bins`: the histogram's samples counted in fio's buckets, keyed by bucket value. */
export function fioBins(h: Histogram): Record<string, number> {
  const counts = new Map<number, number>();
  for (const { value, count } of recorded(h)) {
    const b = fioBucket(value);
    counts.set(b, (counts.get(b) ?? 0) + count);
  }
  const bins: Record<string, number> = {};
  for (const [b, n] of [...counts].sort((x, y) => x[0] - y[0])) bins[String(fioBucketValue(b))] = n;
  return bins;
}
