// vhost-scsi-wasm/transport: a device's virtio transport carried to a guest in another thread.
export { hostTransport, type TransportDescription, type TransportRequest } from "./device/transport-host.js";
export { RemoteTransport } from "./guest/remote-transport.js";
