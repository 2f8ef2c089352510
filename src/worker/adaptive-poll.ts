// How long a thread polls before it sleeps, adapted the way KVM adapts a vCPU's halt-polling
// window (halt_poll_ns, Documentation/virt/kvm/halt-polling.rst): when the thread had to sleep
// and the wait as a whole still ended within the limit, polling a little longer would have
// caught the work, so the window grows; when the wait outlasted the limit, the polling was
// wasted, so it shrinks. A thread whose peer cannot run while it spins (more busy threads than
// cores) sees long waits and stops spinning; one whose work comes back quickly keeps polling.
//
// And, as the kernel's pollers do, it does not poll while other threads wait for a CPU: KVM's
// halt polling stops once another task is runnable on the CPU (single_task_running), vhost's busy
// loop once the scheduler wants the CPU back (need_resched). Here the machine's run queue stands
// in for the CPU's: more runnable threads than CPUs means a spinner keeps one of them (a network
// backstore's socket thread, its server) off a core.
import { platform } from "#platform";

/** The smallest window worth polling, µs (below it the window is 0). */
const MIN_WINDOW_US = 10;

/** How often a thread looks at the run queue, ms (a look costs about 2 µs on Linux). */
const PROBE_MS = 1;

export class AdaptivePoll {
  /** The window now, µs: poll this long with nothing to do before sleeping. */
  windowUs: number;
  private probedAt = Number.NEGATIVE_INFINITY;
  private crowded = false;

  constructor(limitUs: number) {
    this.windowUs = limitUs;
  }

  /**
   * Whether more threads are runnable on the machine than it has CPUs, as last seen (looked at
   * again once PROBE_MS has passed since `now`, performance.now()); false where the platform
   * cannot tell.
   */
  contended(now: number): boolean {
    if (now - this.probedAt >= PROBE_MS) {
      this.probedAt = now;
      const q = platform.runQueue();
      this.crowded = q !== undefined && q.runnable > q.cpus;
    }
    return this.crowded;
  }

  /** The window for a wait that starts at `now`: the adapted one, or 0 while threads wait for a CPU. */
  windowAt(now: number): number {
    return this.contended(now) ? 0 : this.windowUs;
  }

  /**
   * A wait ended: `waitedUs` from the moment the thread ran out of work until work came (its
   * polling included), `slept` whether it went to sleep; `limitUs` the configured window.
   */
  waited(waitedUs: number, slept: boolean, limitUs: number): void {
    if (limitUs <= 0) {
      this.windowUs = 0;
    } else if (!slept) {
      this.windowUs = Math.min(this.windowUs, limitUs);
    } else if (waitedUs > limitUs) {
      this.windowUs = this.windowUs >= 2 * MIN_WINDOW_US ? this.windowUs / 2 : 0;
    } else if (this.windowUs < limitUs) {
      this.windowUs = Math.min(limitUs, this.windowUs > 0 ? this.windowUs * 2 : MIN_WINDOW_US);
    }
  }
}
