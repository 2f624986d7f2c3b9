// The Node.js service's hot path, as a target of the benchmark (bench/run.py, target `node`).
//
// Express + socket.io + mysql2, written the way the service it replaces was: socket.io's
// defaults, one promise pool, no build step. It implements only what bench/baseline_server.py
// implements, with the same behaviour: the handshake with `auth.token` (also the `token`
// cookie), a JWT issued by the real server (HS256, same JWT_SECRET), the user looked up in
// `usuarios`; `mensaje_privado` with an ack: one INSERT into `messages` (autocommit), acked
// after it, then emitted to room `admins` and room `user:<conversation>`, skipping the
// sending socket. It reads the schema the real server created.
//
//     node bench/node/server.js [--port 3000] [--host 127.0.0.1]
//
// Settings: DATABASE_URL (mysql://user[:password]@host[:port]/db), JWT_SECRET, PORT.
"use strict";

const http = require("node:http");
const { performance } = require("node:perf_hooks");
const { parseArgs } = require("node:util");
const express = require("express");
const jwt = require("jsonwebtoken");
const mysql = require("mysql2/promise");
const { Server } = require("socket.io");

const BAD_TOKEN = "Token inválido";

function poolFor(databaseUrl) {
  const url = new URL(databaseUrl);
  if (url.protocol !== "mysql:" && url.protocol !== "mariadb:") {
    throw new Error(`DATABASE_URL: only mysql:// or mariadb:// is supported, not ${url.protocol}`);
  }
  return mysql.createPool({
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    connectionLimit: 10,
    // DATETIME(6) as the server's text 'YYYY-MM-DD HH:MM:SS.ffffff': no Date, no time zone,
    // microseconds kept.
    dateStrings: true,
  });
}

// Now in UTC as DATETIME(6) text, with microseconds (Date has milliseconds only), as the
// baseline stores datetime.now(UTC).
function nowText() {
  const t = performance.timeOrigin + performance.now();
  const ms = Math.floor(t);
  const us = Math.min(999, Math.floor((t - ms) * 1000));
  const iso = new Date(ms).toISOString(); // 2026-12-03T08:24:06.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(us).padStart(3, "0")}`;
}

// DATETIME(6) text to the wire's ISO 8601, exactly as the baseline writes it (Python's
// isoformat(): six fraction digits, none at all when the microseconds are 0).
function isoOf(text) {
  const [date, time] = text.split(" ");
  const [hms, fraction = ""] = time.split(".");
  const us = fraction.padEnd(6, "0").slice(0, 6);
  return `${date}T${us === "000000" ? hms : `${hms}.${us}`}Z`;
}

function wire(m) {
  return {
    id: m.id,
    from: m.sender,
    to: m.recipient,
    text: m.text,
    created_at: isoOf(m.created_at),
    client_msg_id: m.client_msg_id,
  };
}

function cookie(header, name) {
  for (const part of (header || "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return part.slice(eq + 1).trim();
      }
    }
  }
  return undefined;
}

async function findUser(pool, name) {
  const [rows] = await pool.query("SELECT user, rol FROM usuarios WHERE user = ?", [name]);
  return rows[0];
}

function attach(io, pool, secret) {
  io.use(async (socket, next) => {
    const auth = socket.handshake.auth;
    const given = auth && typeof auth.token === "string" && auth.token ? auth.token : undefined;
    const token = given || cookie(socket.handshake.headers.cookie, "token");
    let claims;
    try {
      claims = jwt.verify(token, secret, { algorithms: ["HS256"] });
    } catch {
      return next(new Error(BAD_TOKEN));
    }
    if (!claims || typeof claims.user !== "string") return next(new Error(BAD_TOKEN));
    let row;
    try {
      row = await findUser(pool, claims.user);
    } catch (err) {
      console.error("handshake:", err.message);
      return next(new Error("unavailable"));
    }
    if (!row) return next(new Error(BAD_TOKEN));
    socket.data.user = row.user;
    socket.data.admin = row.rol === "admin";
    next();
  });

  io.on("connection", (socket) => {
    socket.join(`user:${socket.data.user}`);
    if (socket.data.admin) socket.join("admins");

    socket.on("mensaje_privado", async (data, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      try {
        const answer = await send(pool, socket, data);
        reply(answer.ack);
        if (answer.emit) {
          socket.to(["admins", `user:${answer.conversation}`]).emit("mensaje_privado", answer.emit);
        }
      } catch (err) {
        console.error("mensaje_privado:", err.message);
        reply({ ok: false, error: "unavailable", message: "The database is unavailable." });
      }
    });
  });
}

async function send(pool, socket, data) {
  const me = socket.data.user;
  const isObject = data !== null && typeof data === "object" && !Array.isArray(data);
  const text = isObject ? data.text : undefined;
  if (typeof text !== "string" || !text) {
    return { ack: { ok: false, error: "invalid", message: "text is required" } };
  }
  let recipient, conversation;
  if (socket.data.admin) {
    const target = typeof data.to === "string" ? await findUser(pool, data.to) : undefined;
    if (!target) return { ack: { ok: false, error: "not_found", message: "No such user." } };
    recipient = conversation = target.user;
  } else {
    recipient = "admins";
    conversation = me;
  }
  const cid = data.client_msg_id;
  const message = {
    id: 0,
    sender: me,
    recipient,
    conversation,
    text,
    created_at: nowText(),
    client_msg_id: typeof cid === "string" || typeof cid === "number" ? cid : null,
  };
  try {
    const [result] = await pool.query(
      "INSERT INTO messages (sender, recipient, conversation, text, created_at, client_msg_id)" +
        " VALUES (?, ?, ?, ?, ?, ?)",
      [me, recipient, conversation, text, message.created_at, message.client_msg_id],
    );
    message.id = result.insertId;
  } catch (err) {
    if (err.code !== "ER_DUP_ENTRY") throw err;
    const [rows] = await pool.query(
      "SELECT id, sender, recipient, text, created_at, client_msg_id FROM messages" +
        " WHERE sender = ? AND client_msg_id = ?",
      [me, message.client_msg_id],
    );
    if (!rows.length) throw err;
    return { ack: { ok: true, message: wire(rows[0]) } };
  }
  const payload = wire(message);
  return { ack: { ok: true, message: payload }, emit: payload, conversation };
}

function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: process.env.PORT || "3000" },
      host: { type: "string", default: "127.0.0.1" },
    },
  });
  const secret = process.env.JWT_SECRET;
  if (!secret || !process.env.DATABASE_URL) {
    console.error("JWT_SECRET and DATABASE_URL are required");
    process.exit(2);
  }
  const pool = poolFor(process.env.DATABASE_URL);
  const app = express();
  app.get("/healthz", (_req, res) => res.json({ status: "ok" }));
  const server = http.createServer(app);
  // As the baseline effectively runs: both transports; permessage-deflate negotiated when the
  // client offers it (python-engineio's Tornado handler enables it; bench/load.py's raw
  // client does not offer it).
  const io = new Server(server, { transports: ["polling", "websocket"], perMessageDeflate: true });
  attach(io, pool, secret);
  server.listen(Number(values.port), values.host);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    io.close(() => {
      pool.end().finally(() => process.exit(0));
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main();
