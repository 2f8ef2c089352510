// How long a thread polls before it sleeps, adapted the way KVM adapts a vCPU's halt-polling
// window (halt_poll_ns, Documentation/virt/kvm/halt-polling.rst): when the thread had to sleep
// and the wait as a whole still ended within the limit, polling a little longer would have
// caught the work, so the window grows; when the wait outlasted the limit, the polling was
// wasted, so it shrinks. A thread whose peer cannot run while it spins (more busy threads than
// cores) sees long waits and stops spinning; one whose work comes back quickly keeps polling.

/** The smallest window worth polling, µs (below it the window is 0). */
const MIN_WINDOW_US = 10;

export class AdaptivePoll {
  /** The window now, µs: poll this long with nothing to do before sleeping. */
  windowUs: number;

  constructor(limitUs: number) {
    this.windowUs = limitUs;
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
