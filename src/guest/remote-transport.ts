import { EventFd, onSignal } from "../sys/eventfd.js";
import type { QueueConfig, VirtioTransport } from "../virtio/transport.js";
import type { TransportDescription, TransportRequest } from "../virtio/transport.js";

/**
 * The guest side of hostTransport(): a VirtioTransport in the guest's thread. Feature and queue
 * writes are kept until the next status write, which carries them to the device; kicks write
 * the kick eventfds and interrupts come from waiting on the call eventfds, both shared memory.
 */
export class RemoteTransport implements VirtioTransport {
  readonly deviceId: number;
  private statusReg = 0;
  private driverFeatures = 0n;
  private readonly queueWrites = new Map<number, QueueConfig>();
  private readonly kicks: EventFd[];
  private readonly calls: EventFd[];
  private readonly waiting = new Map<number, { resolve: (m: { status: number; error?: string; data?: Uint8Array }) => void }>();
  private nextId = 1;
  private config: Uint8Array;
  private listening = false;

  constructor(
    private readonly desc: TransportDescription,
    private readonly port: MessagePort,
  ) {
    this.deviceId = desc.deviceId;
    this.statusReg = desc.status ?? 0;
    this.config = desc.config;
    this.kicks = desc.notifiers.map((n) => EventFd.fromHandle(n.kick));
    this.calls = desc.notifiers.map((n) => EventFd.fromHandle(n.call));
    port.onmessage = (e: MessageEvent<{ id: number; status: number; error?: string; data?: Uint8Array }>) => {
      const m = e.data;
      this.waiting.get(m.id)?.resolve(m);
      this.waiting.delete(m.id);
    };
  }

  private request(r: Omit<TransportRequest, "id"> & { op: TransportRequest["op"] }): Promise<{ status: number; error?: string; data?: Uint8Array }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, { resolve });
      this.port.postMessage({ id, ...r });
    });
  }

  deviceFeatures(): bigint {
    return BigInt(this.desc.deviceFeatures);
  }
  setDriverFeatures(f: bigint): void {
    this.driverFeatures = f;
  }
  status(): number {
    return this.statusReg;
  }
  async setStatus(status: number): Promise<void> {
    const r = await this.request({
      op: "setStatus",
      status,
      driverFeatures: this.driverFeatures.toString(),
      queues: [...this.queueWrites],
    } as TransportRequest);
    this.queueWrites.clear();
    this.statusReg = r.status;
    if (r.error) throw new Error(r.error);
  }
  readConfig(offset: number, length: number): Uint8Array {
    return this.config.slice(offset, offset + length);
  }
  writeConfig(offset: number, data: Uint8Array): void {
    const c = this.config.slice();
    c.set(data, offset);
    this.config = c;
    void this.request({ op: "writeConfig", offset, data } as TransportRequest);
  }
  numQueues(): number {
    return this.desc.queueMaxSizes.length;
  }
  queueMaxSize(index: number): number {
    return this.desc.queueMaxSizes[index];
  }
  setQueue(index: number, q: QueueConfig): void {
    this.queueWrites.set(index, q);
  }
  notify(index: number): void {
    this.kicks[index].write(1n);
  }
  onInterrupt(handler: (index: number) => void): void {
    if (this.listening) return;
    this.listening = true;
    this.calls.forEach((efd, i) =>
      onSignal(
        efd,
        () => handler(i),
        () => this.listening,
      ),
    );
  }
  /** Stops waiting for interrupts. */
  close(): void {
    this.listening = false;
    this.port.close();
  }
}
