// Drives a running server with the official socket.io-client, as a browser app would.
// Usage: node smoke.mjs URL USER_TOKEN ADMIN_TOKEN TRANSPORT
// Prints one JSON object with what the client saw; exits non-zero on a timeout.
import { io } from "socket.io-client";

const [url, userToken, adminToken, transport] = process.argv.slice(2);
const transports = [transport];
const seen = {};
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true, seen }));
  process.exit(2);
}, 15000);

function refusal(opts) {
  return new Promise((resolve) => {
    const s = io(url, { ...opts, transports, reconnection: false, forceNew: true });
    s.on("connect", () => { s.disconnect(); resolve(null); });
    s.on("connect_error", (err) => { s.disconnect(); resolve(err.message); });
  });
}

function connect(token) {
  return new Promise((resolve, reject) => {
    const s = io(url, { auth: { token }, transports, reconnection: false, forceNew: true });
    s.on("connect", () => resolve(s));
    s.on("connect_error", (err) => reject(err));
  });
}

seen.noAuth = await refusal({});
seen.noToken = await refusal({ extraHeaders: { Cookie: "a=b" } });
seen.badToken = await refusal({ auth: { token: "x.y.z" } });

const user = await connect(userToken);
const admin = await connect(adminToken);
seen.userId = user.id;

const arrived = new Promise((resolve) => admin.on("mensaje_privado", resolve));
seen.ack = await user.timeout(5000).emitWithAck("mensaje_privado", { text: "hola <b>", client_msg_id: "js-1" });
seen.adminGot = await arrived;

const reply = new Promise((resolve) => user.on("mensaje_privado", resolve));
seen.replyAck = await admin.timeout(5000).emitWithAck("mensaje_privado", { to: "ana", text: "¿en qué te ayudo?" });
seen.userGot = await reply;

seen.sync = await user.timeout(5000).emitWithAck("sync", { after: 0 });
seen.bad = await user.timeout(5000).emitWithAck("mensaje_privado", { text: "" });

const announced = new Promise((resolve) => user.on("announcement", resolve));
seen.announceAck = await admin.timeout(5000).emitWithAck("announcement", { text: "hi all" });
seen.announcement = await announced;

user.disconnect();
admin.disconnect();
clearTimeout(deadline);
console.log(JSON.stringify(seen));
