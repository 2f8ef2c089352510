// The yardstick of a run whose busy threads (guest threads and vhost workers) outnumber the
// cores: the same workload in the largest configuration that fits them (fewer jobs and vhost
// workers, the same queues), run in the same process right before and right after it, half the
// time each, as the C loop brackets a RAM-disk run. The ratio says what asking for more threads
// than cores cost, measured against a state of the machine the run itself saw.
import { platform } from "#platform";
import { busyThreads, parseOptions, type FioOptions } from "./options.js";

/** The fitting configuration's options that differ from the run's, as the report names them. */
export function fittingLabel(o: FioOptions): string {
  return `--queues ${o.queues} --workers ${o.workers} --numjobs ${o.numjobs}`;
}

/**
 * The largest configuration of o's workload whose guest threads and vhost workers fit the cores,
 * running `runtimeMs`: as many jobs as half the cores hold (at least one), as many workers as the
 * cores left hold, neither more than o asked for; every other option at its default for that
 * configuration (polling, placement). Undefined when o fits the cores or nothing does (one core).
 */
export function fittingOptions(o: FioOptions, runtimeMs: number): FioOptions | undefined {
  const cores = platform.cores();
  if (busyThreads(o) <= cores) return undefined;
  const numjobs = Math.min(o.numjobs, Math.max(1, Math.floor(cores / 2)));
  const workers = Math.min(o.workers, Math.max(1, cores - numjobs));
  if (numjobs + workers > cores) return undefined;
  const amount = (a: NonNullable<FioOptions["size"]>) => ("bytes" in a ? String(a.bytes) : `${a.percent}%`);
  return parseOptions([
    `--name=${o.name}`,
    `--rw=${o.rw}`,
    `--bs=${o.bs},${o.bsWrite}`,
    `--iodepth=${o.iodepth}`,
    `--queues=${o.queues}`,
    `--numjobs=${numjobs}`,
    `--workers=${workers}`,
    `--runtime=${Math.round(runtimeMs)}ms`,
    ...(o.size ? [`--size=${amount(o.size)}`] : []),
    `--offset=${amount(o.offset)}`,
    `--rwmixread=${o.rwmixread}`,
    `--rate_iops=${o.rateIops}`,
    `--backstore=${o.backstoreArg}`,
    `--direct=${o.direct ? 1 : 0}`,
    `--block-size=${o.blockSize}`,
    `--engine=${o.engine}`,
    ...(o.ioThreads === undefined ? [] : [`--io-threads=${o.ioThreads}`]),
    ...(o.verify ? ["--verify"] : []),
  ]);
}
