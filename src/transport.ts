// vhost-scsi-wasm/transport: a device's virtio transport carried to a guest in another thread.
export { hostTransport } from "./device/transport-host.js";
export type { TransportDescription, TransportRequest } from "./virtio/transport.js";
export { RemoteTransport } from "./guest/remote-transport.js";
