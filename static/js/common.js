// Shared by /chat and /admin: the socket and its reconnection rules, message rendering,
// sending with acks and retries, catching up with `sync`, typing, announcements.
// User-provided text only ever goes through textContent.

const app = document.getElementById("app");
export const me = app.dataset.me;
export const role = app.dataset.role;

const strings = document.getElementById("i18n")?.dataset ?? {};
const AUTH_REFUSALS = new Set(["No autenticado", "Token no proporcionado", "Token inválido"]);
const ACK_TIMEOUT_MS = 10000;
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 5000;
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 60;
export const PAGE_SIZE = 50;

/** A translated string (from the template's data- attributes), with {placeholders} filled in. */
export function t(key, vars = {}) {
  let text = strings[key] ?? key;
  for (const [name, value] of Object.entries(vars)) {
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

/** An element with a class and text content: the one way text reaches the page. */
export function el(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** crypto.randomUUID needs a secure context; plain-HTTP deployments get the same from random bytes. */
export function newClientId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- status and session ------------------------------------------------------------------

const statusEl = document.getElementById("status");

export function setStatus(text, state = "") {
  statusEl.textContent = text;
  if (state) statusEl.dataset.state = state;
  else delete statusEl.dataset.state;
}

let leaving = false;

export function goToLogin() {
  if (leaving) return;
  leaving = true;
  setStatus(t("sessionEnded"), "bad");
  window.location.assign("/login");
}

/** fetch JSON from our own API; a 401 ends the session, other errors throw with the server's text. */
export async function api(url, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401) {
    goToLogin();
    throw new Error(t("sessionEnded"));
  }
  if (!res.ok) {
    throw new Error((data && typeof data.message === "string" && data.message) || t("requestFailed"));
  }
  return data;
}

/** After a server-side disconnect (role change, logout elsewhere), make sure this is still our page. */
async function checkRole() {
  try {
    const who = await api("/api/me");
    if (who && who.rol !== role) window.location.assign("/");
  } catch {
    // a 401 already went to /login; anything else: stay, the socket works
  }
}

/**
 * The page's socket. `onConnect` runs on every (re)connection, after the role check.
 * The socket is created unconnected: call `socket.connect()` once the page has loaded its history.
 */
export function openSocket({ onConnect }) {
  // The HttpOnly `token` cookie goes with the handshake by itself.
  const socket = window.io({ autoConnect: false });
  let rejoining = false; // reconnecting by hand after a server-side disconnect
  let retryTimer = 0;

  setStatus(t("connecting"), "warn");

  socket.on("connect", async () => {
    clearTimeout(retryTimer);
    setStatus(t("connected"), "ok");
    if (rejoining) {
      rejoining = false;
      await checkRole();
    }
    onConnect();
  });

  socket.on("connect_error", (err) => {
    const message = err && err.message;
    if (AUTH_REFUSALS.has(message) || rejoining) {
      // /login sends us straight back if the cookie still holds a valid token.
      goToLogin();
      return;
    }
    if (!socket.active) {
      // Refused by the server (e.g. "unavailable"): the client will not retry by itself.
      setStatus(t("unavailable"), "bad");
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => socket.connect(), 3000);
    } else {
      setStatus(t("reconnecting"), "warn");
    }
  });

  socket.on("disconnect", (reason) => {
    if (leaving) return;
    setStatus(t("reconnecting"), "warn");
    if (reason === "io server disconnect") {
      // Role change, logout or expiry: try once with the same cookie, else log in again.
      rejoining = true;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => socket.connect(), 800);
    }
  });

  socket.on("announcement", showAnnouncement);
  return socket;
}

/** Ask for everything after the greatest id seen, following `more` until caught up. */
export async function catchUp(socket, lastId, handle) {
  for (let rounds = 0; rounds < 100 && socket.connected; rounds += 1) {
    let ack;
    try {
      ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("sync", { after: lastId() });
    } catch {
      return; // no answer: the next reconnect tries again
    }
    if (!ack || !ack.ok || !Array.isArray(ack.messages)) return;
    for (const message of ack.messages) handle(message);
    if (!ack.more || ack.messages.length === 0) return;
  }
}

// ---- announcements -------------------------------------------------------------------------

const announcementEl = document.getElementById("announcement");

function showAnnouncement(data) {
  if (!data || typeof data.text !== "string") return;
  const label = el("span", "label", t("announcementFrom", { name: String(data.from ?? "") }));
  const when = timeEl(data.created_at);
  announcementEl.replaceChildren(label, " ", when, el("span", "", ": "), el("span", "text", data.text));
  announcementEl.hidden = false;
}

// ---- messages ------------------------------------------------------------------------------

function timeEl(iso) {
  const node = el("time");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return node;
  node.dateTime = date.toISOString();
  const today = date.toDateString() === new Date().toDateString();
  node.textContent = today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  node.title = date.toLocaleString();
  return node;
}

/**
 * One conversation's log: messages kept in id order, each id shown once, own messages that are
 * still on their way kept at the bottom until the server has stored them.
 */
export class Thread {
  constructor(log, { nameOf, olderButton = null, emptyNote = null, onOlderLoaded = null }) {
    this.log = log;
    this.nameOf = nameOf;
    this.olderButton = olderButton;
    this.emptyNote = emptyNote;
    this.onOlderLoaded = onOlderLoaded;
    this.byId = new Map();
    this.pending = new Map(); // client_msg_id -> {li, retry}
    this.source = null; // before -> Promise<messages>
    this.generation = 0;
    this.loading = false;
    this.exhausted = true;

    log.addEventListener("scroll", () => {
      if (log.scrollTop < NEAR_TOP_PX) this.loadOlder();
    });
    olderButton?.addEventListener("click", () => this.loadOlder());
  }

  get minId() {
    let min = Infinity;
    for (const id of this.byId.keys()) if (id < min) min = id;
    return min === Infinity ? null : min;
  }

  get maxId() {
    let max = 0;
    for (const id of this.byId.keys()) if (id > max) max = id;
    return max;
  }

  nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.log;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  /** Empty the log and read history from `source(before)` (null: nothing to show). */
  async reset(source) {
    this.generation += 1;
    this.byId.clear();
    this.pending.clear();
    this.log.replaceChildren();
    this.source = source;
    this.exhausted = source === null;
    this.loading = false;
    this.refresh();
    if (source !== null) await this.loadOlder({ first: true });
  }

  refresh() {
    if (this.emptyNote) {
      this.emptyNote.hidden = this.byId.size > 0 || this.pending.size > 0 || !this.exhausted;
    }
    if (this.olderButton) {
      this.olderButton.hidden = this.exhausted;
      this.olderButton.disabled = this.loading;
      this.olderButton.textContent = this.loading ? t("loading") : t("loadOlder");
    }
  }

  /** The next page backwards, keeping what the reader is looking at in place. */
  async loadOlder({ first = false } = {}) {
    if (this.loading || this.exhausted || this.source === null) return;
    const generation = this.generation;
    this.loading = true;
    this.refresh();
    let messages;
    try {
      messages = await this.source(first ? null : this.minId);
    } catch (err) {
      if (generation !== this.generation) return;
      this.loading = false;
      this.refresh();
      setStatus(err.message || t("loadFailed"), "bad");
      return;
    }
    if (generation !== this.generation) return; // another conversation was opened meanwhile
    const before = this.log.scrollHeight - this.log.scrollTop;
    let added = 0;
    for (const message of messages) if (this.add(message, { scroll: false })) added += 1;
    this.loading = false;
    this.exhausted = messages.length < PAGE_SIZE;
    this.refresh();
    if (first) this.scrollToBottom();
    else this.log.scrollTop = this.log.scrollHeight - before;
    this.onOlderLoaded?.(messages);
    // Too short to scroll: nothing would ever trigger the next page, so fetch it now.
    if (added > 0 && !this.exhausted && this.log.scrollHeight <= this.log.clientHeight + NEAR_TOP_PX) {
      await this.loadOlder();
    }
  }

  render(message) {
    const mine = message.from === me;
    const li = el("li", mine ? "msg mine" : "msg theirs");
    li.dataset.id = String(message.id);
    const meta = el("div", "meta");
    meta.append(el("span", "sender", mine ? t("you") : this.nameOf(message.from)), timeEl(message.created_at));
    if (mine) meta.append(el("span", "state", t("sent")));
    li.append(meta, el("p", "text", message.text));
    return li;
  }

  /** Show a stored message once, in id order. True when it was not shown before. */
  add(message, { scroll = true } = {}) {
    if (!message || typeof message.id !== "number" || this.byId.has(message.id)) return false;
    const stick = scroll && this.nearBottom();
    const li = this.render(message);
    const waiting = message.client_msg_id && message.from === me && this.pending.get(message.client_msg_id);
    if (waiting) {
      waiting.li.remove();
      this.pending.delete(message.client_msg_id);
    }
    this.insertInOrder(li, message.id);
    this.byId.set(message.id, li);
    this.refresh();
    if (stick || (waiting && scroll)) this.scrollToBottom();
    return true;
  }

  insertInOrder(li, id) {
    let before = null;
    for (let node = this.log.lastElementChild; node; node = node.previousElementSibling) {
      if (node.dataset.id !== undefined && Number(node.dataset.id) < id) break;
      before = node; // a newer message, or one still pending: stays below
    }
    this.log.insertBefore(li, before);
  }

  /** An own message on its way: shown at once, replaced by the stored one when acked. */
  addPending(clientId, text, retry) {
    const li = el("li", "msg mine pending");
    const meta = el("div", "meta");
    meta.append(el("span", "sender", t("you")), el("span", "state", t("sending")));
    li.append(meta, el("p", "text", text));
    this.pending.set(clientId, { li, retry });
    this.log.append(li);
    this.refresh();
    this.scrollToBottom();
  }

  setSending(clientId) {
    const entry = this.pending.get(clientId);
    if (!entry) return;
    entry.li.className = "msg mine pending";
    entry.li.querySelector(".state").textContent = t("sending");
    entry.li.querySelector(".retry")?.remove();
  }

  setFailed(clientId, reason) {
    const entry = this.pending.get(clientId);
    if (!entry) return;
    const stick = this.nearBottom();
    entry.li.className = "msg mine failed";
    entry.li.querySelector(".state").textContent = `${t("failed")}: ${reason}`;
    if (!entry.li.querySelector(".retry")) {
      const button = el("button", "retry", t("retry"));
      button.type = "button";
      button.addEventListener("click", () => entry.retry());
      entry.li.append(button);
    }
    if (stick) this.scrollToBottom();
  }
}

/**
 * Send `text` (to `to`, or to the team when `to` is undefined) through `thread`; `onStored` gets
 * the stored message from the ack. A retry re-sends the same client_msg_id, so the server keeps
 * one copy however many times it arrives.
 */
export function sendMessage(socket, thread, { to, text, onStored }) {
  const clientId = newClientId();
  const payload = to === undefined ? { text, client_msg_id: clientId } : { to, text, client_msg_id: clientId };
  const attempt = () => {
    thread.setSending(clientId);
    socket.timeout(ACK_TIMEOUT_MS).emit("mensaje_privado", payload, (err, ack) => {
      if (err) thread.setFailed(clientId, t("noAnswer"));
      else if (ack && ack.ok && ack.message) onStored(ack.message);
      else thread.setFailed(clientId, (ack && ack.message) || t("requestFailed"));
    });
  };
  thread.addPending(clientId, text, attempt);
  attempt();
}

// ---- composer and typing -------------------------------------------------------------------

/**
 * Wire the message form: Enter sends, Shift+Enter is a new line; `typing` is emitted at most every
 * 2 s while typing. `target()` gives {to} for typing/sending, or null when there is nowhere to send.
 */
export function bindComposer(socket, { form, textarea, errorEl, target, onSend }) {
  let lastTyping = 0;

  const typing = (on) => {
    const where = target();
    if (!where || !socket.connected) return;
    socket.emit("typing", where.to === undefined ? { typing: on } : { to: where.to, typing: on });
  };

  const stopTyping = () => {
    if (lastTyping && Date.now() - lastTyping < TYPING_SHOWN_MS) typing(false);
    lastTyping = 0;
  };

  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  textarea.addEventListener("input", () => {
    errorEl.hidden = true;
    if (textarea.value === "") {
      stopTyping();
    } else if (Date.now() - lastTyping >= TYPING_EVERY_MS) {
      lastTyping = Date.now();
      typing(true);
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value;
    if (text.trim() === "") return;
    const where = target();
    if (!where) {
      errorEl.textContent = t("openFirst");
      errorEl.hidden = false;
      return;
    }
    stopTyping();
    errorEl.hidden = true;
    onSend(where, text);
    textarea.value = "";
    textarea.focus();
  });

  return { stopTyping };
}

/** "X is typing…" for whoever sent `typing: true` in the last 5 s. */
export class TypingIndicator {
  constructor(node, nameOf) {
    this.node = node;
    this.nameOf = nameOf;
    this.timers = new Map();
  }

  set(user, on) {
    clearTimeout(this.timers.get(user));
    this.timers.delete(user);
    if (on) this.timers.set(user, setTimeout(() => this.set(user, false), TYPING_SHOWN_MS));
    this.render();
  }

  clear() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.render();
  }

  render() {
    const names = [...this.timers.keys()].map((user) => this.nameOf(user));
    if (names.length === 0) this.node.textContent = "";
    else if (names.length === 1) this.node.textContent = t("typing", { name: names[0] });
    else this.node.textContent = t("typingMany", { names: names.join(", ") });
  }
}

/** Run `fn` when the tab is visible now or becomes visible later. */
export function whenVisible(fn) {
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") fn();
  });
}
