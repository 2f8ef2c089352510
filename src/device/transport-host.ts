import type { TransportDescription, TransportRequest, VirtioTransport } from "../virtio/transport.js";
import type { EventFdHandle } from "../sys/eventfd.js";
import { VIRTIO_SCSI_CONFIG_SIZE } from "../virtio/virtio-scsi.js";

/**
 * Serves a device's transport to a guest driver running in another thread, over a message
 * port: the register writes a driver makes (features, queue addresses, status, config) arrive
 * as requests; kicks and interrupts go directly through the shared eventfds.
 */
export function hostTransport(
  device: VirtioTransport & { notifiers(): { kick: EventFdHandle; call: EventFdHandle }[] },
  port: MessagePort,
): TransportDescription {
  port.onmessage = async (e: MessageEvent<TransportRequest>) => {
    const m = e.data;
    try {
      if (m.op === "setStatus") {
        device.setDriverFeatures(BigInt(m.driverFeatures));
        for (const [i, q] of m.queues) device.setQueue(i, q);
        await device.setStatus(m.status);
        port.postMessage({ id: m.id, status: device.status() });
      } else if (m.op === "writeConfig") {
        device.writeConfig(m.offset, m.data);
        port.postMessage({ id: m.id, status: device.status() });
      } else {
        port.postMessage({ id: m.id, status: device.status(), data: device.readConfig(m.offset, m.length) });
      }
    } catch (err) {
      port.postMessage({ id: m.id, status: device.status(), error: (err as Error).message });
    }
  };
  return {
    deviceId: device.deviceId,
    status: device.status(),
    deviceFeatures: device.deviceFeatures().toString(),
    config: device.readConfig(0, VIRTIO_SCSI_CONFIG_SIZE),
    queueMaxSizes: Array.from({ length: device.numQueues() }, (_, i) => device.queueMaxSize(i)),
    notifiers: device.notifiers(),
  };
}
