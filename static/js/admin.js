// /admin: the team's inbox. Conversations (with unread counts and presence), the open
// conversation, replies, announcements and role changes.
import {
  Outbox,
  PAGE_SIZE,
  Thread,
  TypingIndicator,
  api,
  bindComposer,
  bindCounter,
  catchUp,
  el,
  me,
  openSocket,
  refusal,
  setStatus,
  t,
  whenVisible,
} from "./common.js";

const ADMINS = "admins";

const main = document.getElementById("app");
const list = document.getElementById("conversations");
const noConversations = document.getElementById("no-conversations");
const title = document.getElementById("thread-title");
const log = document.getElementById("log");
const roleActions = document.getElementById("role-actions");
const makeAdmin = document.getElementById("make-admin");
const makeUser = document.getElementById("make-user");
const roleResult = document.getElementById("role-result");
const form = document.getElementById("composer");
const textarea = document.getElementById("message");
const errorEl = document.getElementById("composer-error");
const announceForm = document.getElementById("announce");
const announceInput = document.getElementById("announcement-text");
const announceResult = document.getElementById("announce-result");
const baseTitle = document.title;

/** user -> {user, name, rol, online, unread, last, li, button} */
const conversations = new Map();
const presence = new Map(); // user -> online, for conversations that do not exist yet
const seen = new Set(); // message ids already counted in the inbox
let lastId = 0; // greatest message id seen anywhere, for `sync`
let openUser = null;
let listLoaded = false;
let unreadOpen = false; // the open conversation got messages not yet marked read

/** Whose conversation a message belongs to: the user's, never an admin's. */
const conversationOf = (message) => (message.to === ADMINS ? message.from : message.to);
const senders = new Map(); // user -> display name, from messages (admins have no conversation)
const nameOf = (user) => conversations.get(user)?.name ?? senders.get(user) ?? user;
/** Who wrote a message, as people are shown: the display name it carries. */
const nameOfMessage = (message) =>
  typeof message.from_name === "string" && message.from_name ? message.from_name : nameOf(message.from);

function learnName(message) {
  if (typeof message.from_name === "string" && message.from_name) senders.set(message.from, message.from_name);
}

/** How alike two display names look to a person: compatibility forms, case, spaces and
 * invisible characters do not tell them apart. */
const looks = (name) =>
  name
    .normalize("NFKC")
    .replace(/[\s\p{Default_Ignorable_Code_Point}]+/gu, "")
    .toLowerCase();

/** What the inbox calls a conversation: its display name, followed by the user name when
 * another conversation in the list looks the same ("Alice (alice2)"), so that an admin can
 * tell them apart. Always starts with the display name. */
function labelOf(c) {
  const mine = looks(c.name);
  for (const other of conversations.values()) {
    if (other !== c && looks(other.name) === mine) return `${c.name} (${c.user})`;
  }
  return c.name;
}

const thread = new Thread(log, {
  nameOf: nameOfMessage,
  olderButton: document.getElementById("older"),
  onOlderLoaded: (messages) => messages.forEach(learnName),
});
const typing = new TypingIndicator(document.getElementById("typing"), nameOf);

// ---- the conversation list -------------------------------------------------------------------

function entry(user, name = user) {
  let c = conversations.get(user);
  if (!c) {
    c = { user, name, rol: null, online: presence.get(user) ?? false, unread: 0, last: null };
    c.li = el("li");
    c.button = el("button", "convo");
    c.button.type = "button";
    c.button.addEventListener("click", () => openConversation(user));
    c.li.append(c.button);
    conversations.set(user, c);
  }
  return c;
}

/** The button's accessible name starts with the user's name: "Ana · 3 unread · online". */
function renderEntry(c) {
  const dot = el("span", c.online ? "dot online" : "dot");
  dot.setAttribute("aria-hidden", "true");
  const line = el("span", "line");
  line.append(el("span", "name", labelOf(c)));
  if (c.unread > 0) line.append(el("span", "unread", ` · ${t("unread", { count: c.unread })}`));
  line.append(el("span", "visually-hidden", ` · ${c.online ? t("online") : t("offline")}`));
  const parts = [dot, line];
  if (c.last) {
    const who = c.last.from === me ? `${t("you")}: ` : c.last.to === ADMINS ? "" : `${nameOfMessage(c.last)}: `;
    const preview = el("span", "preview", who + c.last.text.slice(0, 140));
    preview.setAttribute("aria-hidden", "true"); // shown in the log once opened
    parts.push(preview);
  }
  c.button.replaceChildren(...parts);
  if (c.user === openUser) {
    c.button.setAttribute("aria-current", "true");
    title.textContent = t("conversationWith", { name: labelOf(c) });
    log.setAttribute("aria-label", title.textContent);
    showRoleActions(c);
  } else c.button.removeAttribute("aria-current");
  noConversations.hidden = conversations.size > 0;
}

/** Render again the entries that look like `c` (one of them is new or was renamed). */
function renderLookalikes(c) {
  const mine = looks(c.name);
  for (const other of conversations.values()) if (looks(other.name) === mine) renderEntry(other);
}

function moveToTop(c) {
  if (list.firstElementChild !== c.li) list.prepend(c.li);
}

function updateTitle() {
  const total = [...conversations.values()].reduce((n, c) => n + c.unread, 0) + (unreadOpen ? 1 : 0);
  document.title = total > 0 && document.visibilityState !== "visible" ? `(${total}) ${baseTitle}` : baseTitle;
}

async function loadConversations() {
  const body = await api("/api/conversations");
  const rows = Array.isArray(body?.conversations) ? body.conversations : [];
  // Newest first from the server: append in reverse so each one goes on top.
  for (const row of [...rows].reverse()) {
    const c = entry(row.user, row.name || row.user);
    c.name = row.name || row.user;
    if (row.rol === "admin" || row.rol === "user") c.rol = row.rol;
    c.online = Boolean(row.online);
    presence.set(c.user, c.online);
    if (row.last_message) learnName(row.last_message);
    if (row.last_message && (!c.last || row.last_message.id >= c.last.id)) {
      c.last = row.last_message;
      c.unread = c.user === openUser ? 0 : Number(row.unread) || 0;
      seen.add(row.last_message.id);
      if (row.last_message.id > lastId) lastId = row.last_message.id;
    }
    renderEntry(c);
    moveToTop(c);
  }
  // Entries we made up ourselves keep their place by activity.
  const byActivity = [...conversations.values()].sort((a, b) => (b.last?.id ?? 0) - (a.last?.id ?? 0));
  for (const c of byActivity) renderEntry(c); // names may have changed which ones look alike
  list.replaceChildren(...byActivity.map((c) => c.li));
  noConversations.hidden = conversations.size > 0;
  listLoaded = true;
}

let refreshTimer = 0;
/** A message from someone new: fetch the list again (soon, once) to learn the display name. */
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadConversations().catch(() => {}), 500);
}

// ---- the open conversation -------------------------------------------------------------------

function historyOf(user) {
  return (before) => {
    const query = new URLSearchParams({ with: user, limit: String(PAGE_SIZE) });
    if (before !== null) query.set("before", String(before));
    return api(`/api/messages?${query}`).then((body) => (Array.isArray(body?.messages) ? body.messages : []));
  };
}

async function openConversation(user) {
  const c = conversations.get(user);
  if (!c) return;
  const previous = openUser;
  if (previous !== user) composer.stopTyping();
  openUser = user;
  main.classList.add("has-open");
  for (const other of [previous, user]) if (other && conversations.has(other)) renderEntry(conversations.get(other));
  roleResult.textContent = "";
  composer.loadDraft();
  typing.clear();
  window.history.replaceState(null, "", `#${encodeURIComponent(user)}`);
  await thread.reset(historyOf(user));
  if (openUser !== user) return;
  for (const entry of outbox.entries()) if (entry.to === user) thread.addPending(entry, outbox.state);
  unreadOpen = c.unread > 0 || thread.byId.size > 0;
  c.unread = 0;
  renderEntry(c);
  markRead();
  textarea.focus();
}

/** Mark the open conversation read when someone is looking at it. */
function markRead() {
  updateTitle();
  if (!openUser || !unreadOpen || document.visibilityState !== "visible" || !socket.connected) return;
  const upTo = thread.maxId;
  if (!upTo) return;
  unreadOpen = false;
  socket.emit("read", { with: openUser, up_to: upTo });
  updateTitle();
}

/** A message from `sync`, a live event or our own ack. */
function handle(message) {
  if (!message || typeof message.id !== "number") return;
  if (message.id > lastId) lastId = message.id;
  learnName(message);
  const user = conversationOf(message);
  if (typeof user !== "string") return;
  if (user === openUser) {
    thread.add(message);
    if (message.from !== me) typing.set(message.from, false);
  }
  if (seen.has(message.id)) return;
  seen.add(message.id);
  const known = conversations.has(user);
  const c = entry(user);
  if (!known) refreshSoon();
  if (!c.last || message.id > c.last.id) c.last = message;
  if (message.to === ADMINS) {
    if (user === openUser) unreadOpen = true;
    else c.unread += 1;
  }
  if (known) renderEntry(c);
  else renderLookalikes(c);
  moveToTop(c);
  markRead();
}

// ---- the socket ------------------------------------------------------------------------------

const socket = openSocket({
  onConnect: async () => {
    if (!listLoaded) {
      // Without the list, `sync` from 0 would count every old message as unread.
      try {
        await loadConversations();
      } catch (err) {
        setStatus(err.message || t("requestFailed"), "bad");
        return;
      }
    }
    await catchUp(socket, () => lastId, handle);
    markRead();
  },
});

// Replies: everything in this admin's outbox, each to its `to`.
const outbox = new Outbox(socket, {
  onStored: handle,
  onRefused: (entry, reason) => {
    if (entry.to === openUser) thread.setFailed(entry.id, reason);
    else setStatus(`${t("failed")}: ${reason}`, "bad");
  },
  onState: (entry, state) => thread.setState(entry.id, state),
});

socket.on("mensaje_privado", handle);

socket.on("presence", (data) => {
  if (!data || typeof data.user !== "string") return;
  presence.set(data.user, Boolean(data.online));
  const c = conversations.get(data.user);
  if (c) {
    c.online = Boolean(data.online);
    renderEntry(c);
  }
});

socket.on("typing", (data) => {
  if (!data || typeof data.from !== "string" || data.from === me) return;
  const user = data.to === ADMINS ? data.from : data.to;
  if (user === openUser) typing.set(data.from, data.typing === true);
});

whenVisible(markRead);

const composer = bindComposer(socket, {
  form,
  textarea,
  errorEl,
  counter: document.getElementById("composer-count"),
  target: () => (openUser ? { to: openUser } : null),
  draft: () => (openUser ? `draft:${openUser}` : null),
  onSend: ({ to }, text) => {
    const entry = outbox.add(to, text);
    thread.addPending(entry, outbox.state);
    outbox.kick();
  },
});

// ---- announcements ---------------------------------------------------------------------------

bindCounter(announceInput, document.getElementById("announce-count"));
announceInput.addEventListener("input", () => {
  if (announceResult.classList.contains("is-error")) announceResult.textContent = "";
});

announceForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = announceInput.value;
  const why = refusal(text, { empty: "announceFirst" });
  if (why) {
    announceResult.classList.add("is-error");
    announceResult.textContent = why;
    announceInput.focus();
    return;
  }
  const button = announceForm.querySelector("button[type=submit]");
  button.disabled = true;
  announceResult.classList.remove("is-error");
  announceResult.textContent = t("sending");
  socket.timeout(10000).emit("announcement", { text }, (err, ack) => {
    button.disabled = false;
    if (!err && ack && ack.ok) {
      announceResult.textContent = t("announced");
      announceInput.value = "";
      return;
    }
    announceResult.classList.add("is-error");
    announceResult.textContent = err ? t("noAnswer") : (ack && ack.message) || t("requestFailed");
  });
});

// ---- roles -----------------------------------------------------------------------------------

/** The role button that applies to the open conversation's user: "Make user" for an admin,
 * "Make admin" for a user; both while its role is not known. */
function showRoleActions(c) {
  roleActions.hidden = false;
  makeAdmin.hidden = c.rol === "admin";
  makeUser.hidden = c.rol === "user";
}

async function setRole(rol) {
  const user = openUser;
  if (!user) return;
  roleResult.classList.remove("is-error");
  roleResult.textContent = t("sending");
  try {
    const body = await api(`/api/users/${encodeURIComponent(user)}/role`, { method: "POST", body: { rol } });
    const name = body?.user?.name ?? nameOf(user);
    const c = conversations.get(user);
    if (c && (body?.user?.rol === "admin" || body?.user?.rol === "user")) {
      c.rol = body.user.rol;
      if (openUser === user) {
        showRoleActions(c);
        (c.rol === "admin" ? makeUser : makeAdmin).focus(); // the pressed button is gone now
      }
    }
    roleResult.textContent = body?.user?.rol === "admin" ? t("nowAdmin", { name }) : t("nowUser", { name });
  } catch (err) {
    roleResult.classList.add("is-error");
    roleResult.textContent = err.message || t("requestFailed");
  }
}

makeAdmin.addEventListener("click", () => setRole("admin"));
makeUser.addEventListener("click", () => setRole("user"));

// ---- start -----------------------------------------------------------------------------------

try {
  await loadConversations();
} catch (err) {
  setStatus(err.message || t("requestFailed"), "bad");
}
socket.connect();
const wanted = decodeURIComponent(window.location.hash.slice(1));
if (wanted && conversations.has(wanted)) openConversation(wanted);
