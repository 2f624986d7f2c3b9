// A website visitor with the official socket.io-client, as the widget is: the token in
// `auth.token`, no cookie. Usage: node visitor.mjs URL VISITOR_TOKEN TRANSPORT
// Prints one JSON object with what the client saw; exits non-zero on a timeout.
import { io } from "socket.io-client";

const [url, token, transport] = process.argv.slice(2);
const seen = {};
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true, seen }));
  process.exit(2);
}, 15000);

const socket = await new Promise((resolve, reject) => {
  const s = io(url, { auth: { token }, transports: [transport], reconnection: false, forceNew: true });
  s.on("connect", () => resolve(s));
  s.on("connect_error", (err) => reject(err));
});
const reply = new Promise((resolve) => socket.on("mensaje_privado", resolve));
seen.ack = await socket.timeout(5000).emitWithAck("mensaje_privado", { text: "hello from the widget" });
seen.reply = await reply;
seen.sync = await socket.timeout(5000).emitWithAck("sync", { after: 0 });
socket.disconnect();
clearTimeout(deadline);
console.log(JSON.stringify(seen));
