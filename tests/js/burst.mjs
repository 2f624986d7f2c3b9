// Emits COUNT `mensaje_privado` in one tick over one transport, as a client resending its
// outbox does, and prints every ack in the order the client received them.
// Usage: node burst.mjs URL TOKEN TRANSPORT COUNT
import { io } from "socket.io-client";

const [url, token, transport, count] = process.argv.slice(2);
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(2);
}, 60000);

const socket = await new Promise((resolve, reject) => {
  const s = io(url, { auth: { token }, transports: [transport], reconnection: false, forceNew: true });
  s.on("connect", () => resolve(s));
  s.on("connect_error", reject);
});
const arrived = [];
const acks = await Promise.all(
  Array.from({ length: Number(count) }, (_, i) =>
    socket
      .timeout(30000)
      .emitWithAck("mensaje_privado", { text: `burst ${i}`, client_msg_id: `burst-${i}` })
      .then((ack) => { arrived.push(i); return ack; })
      .catch((err) => ({ ok: false, error: `client: ${err.message}` })),
  ),
);
socket.disconnect();
clearTimeout(deadline);
console.log(JSON.stringify({ acks, arrived }));
