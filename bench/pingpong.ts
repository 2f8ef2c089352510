// The other side of the eventfd round-trip micro-benchmark: answers each ping, blocking in
// between, either with EventFds (mode "eventfd") or with bare Atomics on two words ("raw").
import { workerData } from "node:worker_threads";
import { EventFd } from "../src/sys/eventfd.js";

if (workerData.mode === "eventfd") {
  const ping = EventFd.fromHandle(workerData.ping);
  const pong = EventFd.fromHandle(workerData.pong);
  for (;;) {
    ping.read();
    pong.write(1n);
  }
} else {
  const raw = new Int32Array(workerData.raw as SharedArrayBuffer);
  let seen = 0;
  for (;;) {
    Atomics.wait(raw, 0, seen);
    seen = Atomics.load(raw, 0);
    Atomics.store(raw, 1, seen);
    Atomics.notify(raw, 1);
  }
}
