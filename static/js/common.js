// Shared by /chat, /admin and the widget: the socket and its reconnection rules, message
// rendering, sending with acks and retries, catching up with `sync`, typing, announcements.
// User-provided text only ever goes through textContent.

const app = document.getElementById("app");
export const me = app.dataset.me;
export const role = app.dataset.role;
/** MSG_MAX_CHARS: the longest text the server takes, in Unicode code points. */
export const MAX_CHARS = Number(app.dataset.max) || 4000;

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

// ---- storage: this user's outbox and drafts --------------------------------------------------

/**
 * localStorage under keys of this user's own ("supportchat:<user>:..."), so that people who
 * share a browser never see each other's drafts; a Map for this page view when storage is
 * refused (private windows, quotas, disabled storage).
 */
const prefix = `supportchat:${me}:`;
const memory = new Map();

function backing() {
  try {
    const probe = `${prefix}probe`;
    window.localStorage.setItem(probe, "1");
    window.localStorage.removeItem(probe);
    return window.localStorage;
  } catch {
    return null;
  }
}

const local = backing();

export const store = {
  key: (name) => prefix + name,
  get(name) {
    try {
      return local ? local.getItem(prefix + name) : (memory.get(name) ?? null);
    } catch {
      return memory.get(name) ?? null;
    }
  },
  set(name, value) {
    memory.set(name, value);
    try {
      local?.setItem(prefix + name, value);
    } catch {
      // full: this page view still has it in memory
    }
  },
  remove(name) {
    memory.delete(name);
    try {
      local?.removeItem(prefix + name);
    } catch {
      // nothing to do
    }
  },
  /** Forget everything this user left in this browser (at logout). */
  clear() {
    memory.clear();
    if (!local) return;
    try {
      for (let i = local.length - 1; i >= 0; i -= 1) {
        const key = local.key(i);
        if (key !== null && key.startsWith(prefix)) local.removeItem(key);
      }
    } catch {
      // nothing to do
    }
  },
};

// ---- status and session ------------------------------------------------------------------

const statusEl = document.getElementById("status");

export function setStatus(text, state = "") {
  statusEl.textContent = text;
  if (state) statusEl.dataset.state = state;
  else delete statusEl.dataset.state;
}

let leaving = false;

/**
 * How this page proves who it is. The site's own pages: the HttpOnly `token` cookie, and a
 * session that ends goes to /login. The widget, inside other sites' pages where browsers block
 * cookies: `token` (a bearer token, sent as `Authorization: Bearer` and as the handshake's
 * `auth.token`) and `ended` (what to do instead of going to /login). Set before any request.
 */
export const session = { token: null, ended: null };

// Logging out forgets this user's unsent messages and drafts in this browser.
for (const form of document.querySelectorAll("form.logout")) {
  form.addEventListener("submit", () => store.clear());
}

export function goToLogin() {
  if (leaving) return;
  leaving = true;
  if (session.ended) {
    session.ended();
    return;
  }
  setStatus(t("sessionEnded"), "bad");
  window.location.assign("/login");
}

/** fetch JSON from our own API; a 401 ends the session, other errors throw with the server's text. */
export async function api(url, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (session.token) {
    init.credentials = "omit";
    init.headers.Authorization = `Bearer ${session.token}`;
  }
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
  // The HttpOnly `token` cookie goes with the handshake by itself; a bearer token goes as
  // `auth.token`, read again at every (re)connection.
  const options = { autoConnect: false };
  if (session.token) options.auth = (send) => send({ token: session.token });
  const socket = window.io(options);
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
  const name = typeof data.from_name === "string" && data.from_name ? data.from_name : String(data.from ?? "");
  const label = el("span", "label", t("announcementFrom", { name }));
  const when = timeEl(data.created_at);
  announcementEl.replaceChildren(label, " ", when, el("span", "", ": "), el("span", "text", data.text));
  announcementEl.hidden = false;
}

// ---- messages ------------------------------------------------------------------------------

// In the browser's own locale; "numeric" hours: 7:33 PM (or 19:33), never 07:33 PM.
const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dayAndTime = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "short" });
const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

function timeEl(iso) {
  const node = el("time");
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return node;
  node.dateTime = date.toISOString();
  const today = date.toDateString() === new Date().toDateString();
  node.textContent = (today ? timeOfDay : dayAndTime).format(date);
  node.title = fullTime.format(date);
  return node;
}

/**
 * One conversation's log: messages kept in id order, each id shown once, own messages that are
 * still on their way kept at the bottom until the server has stored them.
 */
export class Thread {
  /** `extras(message)`: what to show under a message's text (its attachments), or null. */
  constructor(log, { nameOf, olderButton = null, emptyNote = null, onOlderLoaded = null, extras = () => null }) {
    this.log = log;
    this.nameOf = nameOf;
    this.extras = extras;
    this.olderButton = olderButton;
    this.emptyNote = emptyNote;
    this.onOlderLoaded = onOlderLoaded;
    this.byId = new Map();
    this.pending = new Map(); // client_msg_id -> {li}: own messages not stored yet
    this.stored = new Set(); // client_msg_ids of own messages shown as stored
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
    this.stored.clear();
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
    if (message.note === true) markPrivate(li, meta);
    meta.append(el("span", "sender", mine ? t("you") : this.nameOf(message)), timeEl(message.created_at));
    if (mine) meta.append(el("span", "state", t("sent")));
    this.fill(li, meta, message);
    return li;
  }

  /** A message's parts: its meta line, its text (none for attachments alone), its extras. */
  fill(li, meta, message) {
    li.append(meta);
    if (message.text) li.append(el("p", "text", message.text));
    const extra = this.extras(message);
    if (extra) li.append(extra);
  }

  /** Show a stored message once, in id order. True when it was not shown before. */
  add(message, { scroll = true } = {}) {
    if (!message || typeof message.id !== "number") return false;
    const clientId = message.from === me && typeof message.client_msg_id === "string" ? message.client_msg_id : null;
    if (clientId) this.stored.add(clientId);
    const waiting = clientId && this.pending.get(clientId);
    if (waiting) {
      waiting.li.remove();
      this.pending.delete(clientId);
    }
    if (this.byId.has(message.id)) {
      if (waiting) this.refresh();
      return false;
    }
    const stick = scroll && this.nearBottom();
    const li = this.render(message);
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

  /** An own message from the outbox: shown at the bottom until the server has stored it. */
  addPending(entry, state) {
    if (this.pending.has(entry.id) || this.stored.has(entry.id)) return;
    const li = el("li", "msg mine pending");
    const meta = el("div", "meta");
    if (entry.note === true) markPrivate(li, meta);
    meta.append(el("span", "sender", t("you")), el("span", "state", ""));
    this.fill(li, meta, entry);
    this.pending.set(entry.id, { li });
    this.setState(entry.id, state);
    this.log.append(li);
    this.refresh();
    this.scrollToBottom();
  }

  /** "waiting" (no connection) or "sending". */
  setState(clientId, state) {
    const pending = this.pending.get(clientId);
    if (!pending || pending.li.classList.contains("failed")) return;
    pending.li.querySelector(".state").textContent = state === "waiting" ? t("waiting") : t("sending");
    pending.li.classList.toggle("waiting", state === "waiting");
  }

  /** Refused for good: it stays in view with the reason, and is not sent again. */
  setFailed(clientId, reason) {
    const pending = this.pending.get(clientId);
    if (!pending) return;
    const stick = this.nearBottom();
    pending.li.classList.remove("pending", "waiting");
    pending.li.classList.add("failed");
    pending.li.querySelector(".state").textContent = `${t("failed")}: ${reason}`;
    if (stick) this.scrollToBottom();
  }
}

/** A private note of the team (admins only): its own colours and a visible label. */
function markPrivate(li, meta) {
  li.classList.add("private");
  meta.append(el("span", "private-label", t("privateNote")));
}

// ---- the outbox ----------------------------------------------------------------------------

const RETRYABLE = new Set(["rate_limited", "unavailable"]);
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;

/**
 * Every message typed, from the moment it is sent until the server has answered for it for
 * good, kept in this user's storage (so a reload or a closed tab loses nothing). Each entry is
 * `{id, to?, text, note?}` (`note: true`: an admin's private note, sent as such on every
 * attempt); `id` is its client_msg_id, given once, so that however many times it goes
 * out (after a reload, a reconnect, an ack that never came) the server stores and delivers it
 * once. Entries go out one at a time, oldest first, whenever the socket is connected: a
 * `rate_limited` or `unavailable` answer, or none, sends the same entry again later; a
 * definitive refusal (`invalid`, `forbidden`, `not_found`) takes it out with its reason.
 */
export class Outbox {
  constructor(socket, { onStored, onRefused, onState }) {
    this.socket = socket;
    this.onStored = onStored;
    this.onRefused = onRefused;
    this.onState = onState;
    this.inFlight = 0; // the attempt waiting for its ack, 0 when none
    this.attempts = 0;
    this.retryTimer = 0;
    this.delay = 0;

    socket.on("connect", () => {
      this.announce();
      this.kick({ now: true });
    });
    socket.on("disconnect", () => {
      this.inFlight = 0; // its ack will not come; the next connection sends it again
      clearTimeout(this.retryTimer);
      this.retryTimer = 0;
      this.announce();
    });
    // Another tab of the same user added or sent some.
    window.addEventListener("storage", (event) => {
      if (event.key === store.key("outbox")) this.kick();
    });
  }

  /** The entries not yet answered for, oldest first. */
  entries() {
    let list;
    try {
      list = JSON.parse(store.get("outbox") ?? "[]");
    } catch {
      list = [];
    }
    if (!Array.isArray(list)) return [];
    return list.filter((e) => e && typeof e.id === "string" && typeof e.text === "string");
  }

  save(list) {
    if (list.length === 0) store.remove("outbox");
    else store.set("outbox", JSON.stringify(list));
  }

  /** What the page shows for an entry now. */
  get state() {
    return this.socket.connected ? "sending" : "waiting";
  }

  /** Keep a new message (`to` undefined: to the team; `note`: a private note; `attachments`:
   * uploads to send with it); `kick()` sends it. */
  add(to, text, { note = false, attachments = [] } = {}) {
    const entry = { id: newClientId(), text };
    if (to !== undefined) entry.to = to;
    if (note) entry.note = true;
    if (attachments.length > 0) entry.attachments = attachments;
    this.save([...this.entries(), entry]);
    return entry;
  }

  remove(id) {
    this.save(this.entries().filter((e) => e.id !== id));
  }

  announce() {
    for (const entry of this.entries()) this.onState(entry, this.state);
  }

  /** Send the oldest entry, unless one is on its way or waiting for its retry. */
  kick({ now = false } = {}) {
    if (now) {
      clearTimeout(this.retryTimer);
      this.retryTimer = 0;
    }
    if (this.inFlight || this.retryTimer || !this.socket.connected) return;
    const entry = this.entries()[0];
    if (!entry) {
      this.delay = 0;
      return;
    }
    const attempt = ++this.attempts;
    this.inFlight = attempt;
    this.onState(entry, "sending");
    const payload = { text: entry.text, client_msg_id: entry.id };
    if (entry.to !== undefined) payload.to = entry.to;
    if (entry.note === true) payload.note = true;
    if (Array.isArray(entry.attachments)) payload.attachments = entry.attachments.map((a) => a.id);
    this.socket.timeout(ACK_TIMEOUT_MS).emit("mensaje_privado", payload, (err, ack) => {
      this.answered(entry, attempt, err ? null : ack);
    });
  }

  answered(entry, attempt, ack) {
    const current = this.inFlight === attempt;
    if (current) this.inFlight = 0;
    if (ack && ack.ok === true && ack.message) {
      // Stored, even if this answer comes late: out of the outbox, into the thread.
      this.remove(entry.id);
      this.delay = 0;
      this.onStored(ack.message);
      this.kick();
      return;
    }
    if (!current) return; // the entry went out again meanwhile: that attempt decides
    if (ack && ack.ok === false && typeof ack.error === "string" && !RETRYABLE.has(ack.error)) {
      this.remove(entry.id);
      this.onRefused(entry, (typeof ack.message === "string" && ack.message) || t("requestFailed"));
      this.kick();
      return;
    }
    // No answer, or "try again later": the same entry, with the same id, after a pause.
    if (!this.socket.connected) return; // the next connection sends it
    this.delay = Math.min(this.delay ? this.delay * 2 : RETRY_FIRST_MS, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = 0;
      this.kick();
    }, this.delay);
  }
}

// ---- composer and typing -------------------------------------------------------------------

/** Length as the server counts it: Unicode code points (an emoji is one, not two). */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

const numberFormat = new Intl.NumberFormat();
const COUNT_FROM = 0.9; // the counter shows past 90% of the limit

/** Why `text` cannot be sent ("" when it can), for a message or an announcement; `alone`:
 * it has attachments, so it may be empty. */
export function refusal(text, { empty, alone = false }) {
  if (text.trim() === "" && !alone) return t(empty);
  const count = charCount(text);
  if (count > MAX_CHARS) {
    return t("tooLong", { count: numberFormat.format(count), max: numberFormat.format(MAX_CHARS) });
  }
  return "";
}

/**
 * "3,950 / 4,000" under a text box once it is past 90% of the limit; past the limit the box
 * is marked invalid. Nothing is ever cut: the box has no maxlength. Returns the update function
 * (call it after setting the box's value from code).
 */
export function bindCounter(box, counter) {
  const update = () => {
    const count = charCount(box.value);
    const shown = count > MAX_CHARS * COUNT_FROM;
    counter.hidden = !shown;
    counter.textContent = shown ? `${numberFormat.format(count)} / ${numberFormat.format(MAX_CHARS)}` : "";
    counter.classList.toggle("over", count > MAX_CHARS);
    if (count > MAX_CHARS) box.setAttribute("aria-invalid", "true");
    else box.removeAttribute("aria-invalid");
  };
  box.addEventListener("input", update);
  update();
  return update;
}

/**
 * Wire the message form: Enter sends, Shift+Enter is a new line; `typing` is emitted at most every
 * 2 s while typing. `target()` gives {to, note?} for typing/sending, or null when there is nowhere to
 * send; nobody is told of the typing of a private note (`note: true`).
 * `draft()` names where the box's text is kept until it is sent (null: not kept). A blank or too
 * long message is refused with a message, and stays in the box.
 */
export function bindComposer(socket, { form, textarea, errorEl, counter, target, draft, onSend, uploads = null }) {
  let lastTyping = 0;
  const updateCount = bindCounter(textarea, counter);

  /** Whether it was sent: "stopped" only goes after a "typing" that went. */
  const typing = (on) => {
    const where = target();
    if (!where || (on && where.note) || !socket.connected) return false;
    socket.emit("typing", where.to === undefined ? { typing: on } : { to: where.to, typing: on });
    return true;
  };

  const stopTyping = () => {
    if (lastTyping && Date.now() - lastTyping < TYPING_SHOWN_MS) typing(false);
    lastTyping = 0;
  };

  const showError = (text) => {
    errorEl.textContent = text;
    errorEl.hidden = false;
  };

  const keepDraft = () => {
    const name = draft();
    if (name === null) return;
    if (textarea.value === "") store.remove(name);
    else store.set(name, textarea.value);
  };

  textarea.addEventListener("keydown", (event) => {
    // defaultPrevented: taken by another handler first (the canned responses' picker).
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.defaultPrevented) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  textarea.addEventListener("input", () => {
    errorEl.hidden = true;
    keepDraft();
    if (textarea.value === "") {
      stopTyping();
    } else if (Date.now() - lastTyping >= TYPING_EVERY_MS && typing(true)) {
      lastTyping = Date.now();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value;
    const where = target();
    if (!where) {
      showError(t("openFirst"));
      return;
    }
    if (uploads?.busy) {
      showError(t("waitForUploads"));
      return;
    }
    const files = uploads ? uploads.ready() : [];
    const why = refusal(text, { empty: "writeFirst", alone: files.length > 0 });
    if (why) {
      showError(why);
      textarea.focus();
      return;
    }
    stopTyping();
    errorEl.hidden = true;
    onSend(where, text, files);
    uploads?.clear();
    textarea.value = "";
    keepDraft();
    updateCount();
    textarea.focus();
  });

  /** Put back the draft kept for where the box now sends (another conversation was opened). */
  const loadDraft = () => {
    const name = draft();
    textarea.value = (name !== null && store.get(name)) || "";
    errorEl.hidden = true;
    updateCount();
  };
  loadDraft();

  return { stopTyping, loadDraft };
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
