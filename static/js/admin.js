// /admin: the team's inbox. Conversations filtered by owner and status (with unread counts,
// presence, status, assignee and labels), kept live by the `conversation` event; the open
// conversation with the team's controls (assignee, resolve or reopen, snooze, labels), replies,
// private notes and canned responses; the admin's availability; announcements; role changes.
import { attachmentsOf, attachmentsOfMessage, composerUploads } from "./attachments.js";
import { bindCannedPicker } from "./canned.js";
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
  store,
  t,
  whenVisible,
} from "./common.js";

const ADMINS = "admins";
const STATUSES = ["open", "pending", "snoozed", "resolved"];
const VIEWS = ["mine", "none", "all"];
const LIST_PAGE = 50;

const main = document.getElementById("app");
const list = document.getElementById("conversations");
const noConversations = document.getElementById("no-conversations");
const noMatches = document.getElementById("no-matches");
const moreButton = document.getElementById("more");
const viewRadios = [...document.querySelectorAll('input[name="view"]')];
const statusFilter = document.getElementById("status-filter");
const availableSwitch = document.getElementById("available");
const title = document.getElementById("thread-title");
const log = document.getElementById("log");
const roleActions = document.getElementById("role-actions");
const makeAdmin = document.getElementById("make-admin");
const makeUser = document.getElementById("make-user");
const roleResult = document.getElementById("role-result");
const tools = document.getElementById("team-tools");
const visitorFacts = document.getElementById("visitor-facts");
const stateChip = document.getElementById("conversation-state");
const assigneeSelect = document.getElementById("assignee");
const resolveButton = document.getElementById("resolve");
const reopenButton = document.getElementById("reopen");
const snoozeButton = document.getElementById("snooze");
const snoozeFor = document.getElementById("snooze-for");
const labelsInput = document.getElementById("labels");
const teamResult = document.getElementById("team-result");
const form = document.getElementById("composer");
const textarea = document.getElementById("message");
const noteCheck = document.getElementById("private-note");
const errorEl = document.getElementById("composer-error");
const announceForm = document.getElementById("announce");
const announceInput = document.getElementById("announcement-text");
const announceResult = document.getElementById("announce-result");
const baseTitle = document.title;

/** user -> {user, name, rol, online, unread, last, status, assignee, labels, snoozedUntil,
 * stamp, li, button}; `status` is null until the server has said it. */
const conversations = new Map();
const visible = new Set(); // users listed under the current filters (loaded, or live since)
const presence = new Map(); // user -> online, for conversations that do not exist yet
const seen = new Set(); // message ids already counted in the inbox
let lastId = 0; // greatest message id seen anywhere, for `sync`
let openUser = null;
let listLoaded = false;
let nextCursor = null; // the list's next page under the current filters, null when none
let listGeneration = 0; // a new filter drops answers to the older ones
let stamp = 0; // counts `conversation` events: an answer older than one does not undo it
let unreadOpen = false; // the open conversation got messages not yet marked read
let admins = []; // [{user, name, online, available, open_assigned}], from GET /api/admins

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

const statusName = (status) => t(`status${status[0].toUpperCase()}${status.slice(1)}`);
const whenFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const formatWhen = (iso) => {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : whenFormat.format(date);
};

/** An admin as the inbox names them: display name ("You" for oneself in the list). */
function adminName(user) {
  return admins.find((a) => a.user === user)?.name ?? senders.get(user) ?? user;
}

const thread = new Thread(log, {
  nameOf: nameOfMessage,
  olderButton: document.getElementById("older"),
  onOlderLoaded: (messages) => messages.forEach(learnName),
  extras: attachmentsOfMessage,
});
const typing = new TypingIndicator(document.getElementById("typing"), nameOf);
// Files chosen for the open conversation's next message (dropped anywhere on it).
const uploads = composerUploads(log.closest(".thread"));

// ---- filters ---------------------------------------------------------------------------------

/** Mine / Unassigned / All, and one status or all; kept for this admin in this browser. */
const filters = { view: "all", status: "" };
try {
  const saved = JSON.parse(store.get("filters") ?? "null");
  if (saved && VIEWS.includes(saved.view)) filters.view = saved.view;
  if (saved && (saved.status === "" || STATUSES.includes(saved.status))) filters.status = saved.status;
} catch {
  // nothing kept, or something unreadable: the defaults
}
for (const radio of viewRadios) radio.checked = radio.value === filters.view;
statusFilter.value = filters.status;

const narrowed = () => filters.view !== "all" || filters.status !== "";

/** Whether a conversation belongs in the list under the current filters. One whose state is
 * not known yet (a message came before its `conversation` event) is listed under "All" only. */
function matches(c) {
  if (c.status === null) return !narrowed();
  if (filters.status && c.status !== filters.status) return false;
  if (filters.view === "mine") return c.assignee === me;
  if (filters.view === "none") return c.assignee === null;
  return true;
}

function setFilters(change) {
  Object.assign(filters, change);
  store.set("filters", JSON.stringify(filters));
  nextCursor = null;
  renderList(); // what is already known narrows at once; the server's answer replaces it
  loadList().catch((err) => setStatus(err.message || t("requestFailed"), "bad"));
}

for (const radio of viewRadios) {
  radio.addEventListener("change", () => {
    if (radio.checked) setFilters({ view: radio.value });
  });
}
statusFilter.addEventListener("change", () => setFilters({ status: statusFilter.value }));

// ---- the conversation list -------------------------------------------------------------------

function entry(user, name = user) {
  let c = conversations.get(user);
  if (!c) {
    c = {
      user,
      name,
      rol: null,
      online: presence.get(user) ?? false,
      unread: 0,
      last: null,
      status: null,
      assignee: null,
      labels: [],
      snoozedUntil: null,
      visitor: false,
      verified: false,
      email: null,
      stamp: 0,
    };
    c.li = el("li");
    c.button = el("button", "convo");
    c.button.type = "button";
    c.button.addEventListener("click", () => openConversation(user));
    c.li.append(c.button);
    conversations.set(user, c);
  }
  return c;
}

/**
 * Take in a `Conversation` (from the list, a PATCH or the `conversation` event). `since`: the
 * event count when the request was made; a conversation changed by an event after that keeps
 * the newer state the event brought.
 */
function adopt(row, { since = null, fromList = false } = {}) {
  if (!row || typeof row.user !== "string") return null;
  const c = entry(row.user, row.name || row.user);
  if (since !== null && c.stamp > since) return c;
  c.name = row.name || row.user;
  if (row.rol === "admin" || row.rol === "user") c.rol = row.rol;
  if (typeof row.online === "boolean") {
    c.online = row.online;
    presence.set(c.user, c.online);
  }
  if (STATUSES.includes(row.status)) c.status = row.status;
  c.assignee = typeof row.assignee === "string" ? row.assignee : null;
  c.labels = Array.isArray(row.labels) ? row.labels.filter((l) => typeof l === "string") : [];
  c.snoozedUntil = typeof row.snoozed_until === "string" ? row.snoozed_until : null;
  if (typeof row.visitor === "boolean") c.visitor = row.visitor;
  if (typeof row.verified === "boolean") c.verified = row.verified;
  if (row.email === null || typeof row.email === "string") c.email = row.email;
  const last = row.last_message;
  if (last && typeof last.id === "number") {
    learnName(last);
    if (!c.last || last.id >= c.last.id) {
      c.last = last;
      c.unread = c.user === openUser ? 0 : Number(row.unread) || 0;
    }
    seen.add(last.id); // counted in `unread` already
    // Only a listing says that nothing older is missing: `sync` goes on from there.
    if (fromList && last.id > lastId) lastId = last.id;
  }
  if (c.assignee !== null && !admins.some((a) => a.user === c.assignee)) loadAdminsSoon();
  return c;
}

/** The button's accessible name starts with the user's name: "Ana · 3 unread · online · Open ·
 * Sam · billing". */
function renderEntry(c) {
  const dot = el("span", c.online ? "dot online" : "dot");
  dot.setAttribute("aria-hidden", "true");
  const line = el("span", "line");
  line.append(el("span", "name", labelOf(c)));
  if (c.visitor) line.append(el("span", "visually-hidden", " · "), visitorBadge(c));
  if (c.unread > 0) line.append(el("span", "unread", ` · ${t("unread", { count: c.unread })}`));
  line.append(el("span", "visually-hidden", ` · ${c.online ? t("online") : t("offline")}`));
  const parts = [dot, line];
  if (c.last) {
    let who = c.last.from === me ? `${t("you")}: ` : c.last.to === ADMINS ? "" : `${nameOfMessage(c.last)}: `;
    if (c.last.note === true) who = `${t("privateNote")} · ${who}`;
    const body = c.last.text || attachmentsOf(c.last).map((a) => a.name).join(", ");
    const preview = el("span", "preview", who + body.slice(0, 140));
    preview.setAttribute("aria-hidden", "true"); // shown in the log once opened
    parts.push(preview);
  }
  if (c.status !== null) {
    const facts = el("span", "facts");
    facts.append(el("span", "visually-hidden", " · "), el("span", `badge ${c.status}`, statusName(c.status)));
    const owner = c.assignee === null ? t("unassigned") : c.assignee === me ? t("you") : adminName(c.assignee);
    facts.append(el("span", c.assignee === null ? "owner none" : "owner", ` · ${owner}`));
    if (c.labels.length > 0) facts.append(el("span", "tags", ` · ${c.labels.join(", ")}`));
    parts.push(facts);
  }
  c.button.replaceChildren(...parts);
  if (c.user === openUser) {
    c.button.setAttribute("aria-current", "true");
    title.textContent = t("conversationWith", { name: labelOf(c) });
    log.setAttribute("aria-label", title.textContent);
    showRoleActions(c);
    renderTools(c);
    renderVisitor(c);
  } else c.button.removeAttribute("aria-current");
}

/** "Visitor" (from the website widget) or "Verified" (a visitor the site vouched for). */
function visitorBadge(c) {
  return el("span", c.verified ? "badge verified" : "badge visitor", c.verified ? t("verified") : t("visitor"));
}

/** Under the open conversation's title: who a website visitor is, as far as the site said. */
function renderVisitor(c) {
  visitorFacts.hidden = !c.visitor;
  if (!c.visitor) return;
  const parts = [visitorBadge(c)];
  if (c.email) parts.push(" ", el("span", "email", c.email));
  visitorFacts.replaceChildren(...parts);
}

/** Render again the entries that look like `c` (one of them is new or was renamed). */
function renderLookalikes(c) {
  const mine = looks(c.name);
  for (const other of conversations.values()) if (looks(other.name) === mine) renderEntry(other);
}

/** The listed entries, newest activity first, moving only those out of place (a focused
 * entry that stays in place keeps the focus). */
function renderList() {
  const shown = [...conversations.values()]
    .filter((c) => visible.has(c.user) && matches(c))
    .sort((a, b) => (b.last?.id ?? 0) - (a.last?.id ?? 0));
  const keep = new Set(shown.map((c) => c.li));
  for (const li of [...list.children]) if (!keep.has(li)) li.remove();
  let at = list.firstElementChild;
  for (const c of shown) {
    if (c.li === at) at = at.nextElementSibling;
    else list.insertBefore(c.li, at);
  }
  noConversations.hidden = !listLoaded || shown.length > 0 || narrowed();
  noMatches.hidden = !listLoaded || shown.length > 0 || !narrowed();
  moreButton.hidden = nextCursor === null;
}

/** Put in view what now belongs there, after a change to `c`. */
function relist(c, { known = true } = {}) {
  if (matches(c)) visible.add(c.user);
  if (known) renderEntry(c);
  else renderLookalikes(c);
  renderList();
}

function updateTitle() {
  const total = [...conversations.values()].reduce((n, c) => n + c.unread, 0) + (unreadOpen ? 1 : 0);
  document.title = total > 0 && document.visibilityState !== "visible" ? `(${total}) ${baseTitle}` : baseTitle;
}

function listQuery() {
  const query = new URLSearchParams({ limit: String(LIST_PAGE) });
  if (filters.view === "mine") query.set("assignee", "me");
  if (filters.view === "none") query.set("assignee", "none");
  if (filters.status) query.set("status", filters.status);
  return query;
}

/**
 * The list under the current filters: its first page (replacing what is listed), the next page
 * (`more`), or the first page again taken in with what is listed (`merge`: after a reconnect,
 * when events may have been missed).
 */
async function loadList({ more = false, merge = false } = {}) {
  if (!more && !merge) listGeneration += 1;
  const generation = listGeneration;
  const query = listQuery();
  if (more) {
    if (nextCursor === null) return;
    query.set("before", nextCursor);
  }
  const since = stamp;
  const body = await api(`/api/conversations?${query}`);
  if (generation !== listGeneration) return; // the filters changed meanwhile
  const rows = Array.isArray(body?.conversations) ? body.conversations : [];
  if (!more && !merge) visible.clear();
  for (const row of rows) {
    const c = adopt(row, { since, fromList: true });
    if (c) visible.add(c.user);
  }
  if (!merge) nextCursor = typeof body?.next === "string" && body.next ? body.next : null;
  listLoaded = true;
  for (const c of conversations.values()) renderEntry(c); // which names look alike may have changed
  renderList();
  updateTitle();
}

/** At the start: the newest activity of all, so that `sync` goes on from there even when the
 * filters list older conversations only. */
async function loadNewest() {
  const since = stamp;
  const body = await api("/api/conversations?limit=1");
  for (const row of Array.isArray(body?.conversations) ? body.conversations : []) {
    const c = adopt(row, { since, fromList: true });
    if (c && matches(c)) visible.add(c.user);
  }
}

let refreshTimer = 0;
/** A message for a conversation whose state is not known: list the first page again (soon,
 * once); it is there, being the newest, when it belongs under the filters. */
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if ([...conversations.values()].some((c) => c.status === null)) {
      loadList({ merge: true }).catch(() => {});
    }
  }, 800);
}

let loadingMore = false;
moreButton.addEventListener("click", async () => {
  if (loadingMore) return;
  loadingMore = true;
  const before = new Set(list.children);
  moreButton.textContent = t("loading");
  try {
    await loadList({ more: true });
  } catch (err) {
    setStatus(err.message || t("requestFailed"), "bad");
  } finally {
    loadingMore = false;
    moreButton.textContent = t("loadMore");
  }
  if (moreButton.hidden && document.activeElement === document.body) {
    // The button is gone: the keyboard goes on from the first entry that came with it.
    const first = [...list.children].find((li) => !before.has(li));
    first?.querySelector("button")?.focus();
  }
});

// ---- the team: admins and availability -------------------------------------------------------

async function loadAdmins() {
  let body;
  try {
    body = await api("/api/admins");
  } catch {
    return; // the list keeps user names meanwhile
  }
  admins = Array.isArray(body?.admins) ? body.admins.filter((a) => a && typeof a.user === "string") : [];
  const own = admins.find((a) => a.user === me);
  if (own && !availabilityBusy) availableSwitch.checked = own.available === true;
  for (const c of conversations.values()) if (c.assignee !== null) renderEntry(c);
  if (openUser && conversations.has(openUser)) renderTools(conversations.get(openUser));
}

let adminsTimer = 0;
/** Someone was assigned who is not in the list of admins yet (a new admin), or a conversation
 * opens: the assignee's choices follow the team. */
function loadAdminsSoon() {
  if (adminsTimer) return;
  adminsTimer = setTimeout(() => {
    adminsTimer = 0;
    loadAdmins();
  }, 100);
}

let availabilityBusy = false;
availableSwitch.addEventListener("change", async () => {
  const wanted = availableSwitch.checked;
  availabilityBusy = true;
  try {
    const body = await api("/api/me/availability", { method: "PUT", body: { available: wanted } });
    availableSwitch.checked = body?.available === true;
  } catch (err) {
    availableSwitch.checked = !wanted;
    setStatus(err.message || t("requestFailed"), "bad");
  } finally {
    availabilityBusy = false;
  }
});

// ---- the open conversation's controls --------------------------------------------------------

/** The assignee's choices: nobody, then every admin (and the assignee, should they be an admin
 * no longer). Built again only when they change, so that an open menu is not disturbed. */
function fillAssignees(current) {
  const choices = [["", t("unassigned")]];
  const names = admins.map((a) => looks(a.name));
  for (const a of admins) {
    const twin = names.filter((n) => n === looks(a.name)).length > 1;
    choices.push([a.user, twin ? `${a.name} (${a.user})` : a.name]);
  }
  if (current !== null && !admins.some((a) => a.user === current)) choices.push([current, current]);
  const key = JSON.stringify(choices);
  if (assigneeSelect.dataset.key !== key) {
    assigneeSelect.replaceChildren(
      ...choices.map(([value, label]) => {
        const option = el("option", "", label);
        option.value = value;
        return option;
      }),
    );
    assigneeSelect.dataset.key = key;
  }
  assigneeSelect.value = current ?? "";
}

/** The controls of the open conversation, as its state now is. */
function renderTools(c) {
  tools.hidden = false;
  stateChip.className = c.status ? `chip badge ${c.status}` : "chip";
  if (c.status === "snoozed" && c.snoozedUntil) {
    stateChip.textContent = t("snoozedUntil", { time: formatWhen(c.snoozedUntil) });
  } else stateChip.textContent = c.status ? statusName(c.status) : "";
  fillAssignees(c.assignee);
  resolveButton.hidden = c.status === "resolved";
  reopenButton.hidden = c.status !== "resolved" && c.status !== "snoozed";
  snoozeButton.parentElement.hidden = c.status === "resolved";
  // Labels being edited stay as typed; otherwise they follow the conversation.
  const shown = c.labels.join(", ");
  if (document.activeElement !== labelsInput || labelsInput.value === labelsInput.dataset.shown) {
    labelsInput.value = shown;
  }
  labelsInput.dataset.shown = shown;
}

function showResult(text, { error = false } = {}) {
  teamResult.classList.toggle("is-error", error);
  teamResult.textContent = text;
}

/** PATCH the open conversation; `done(c)` says what became of it. Errors are shown as the
 * server words them, and the controls go back to the conversation's state. */
async function change(body, done) {
  const user = openUser;
  if (!user) return null;
  showResult(t("saving"));
  const since = stamp;
  try {
    const answer = await api(`/api/conversations/${encodeURIComponent(user)}`, { method: "PATCH", body });
    const c = adopt(answer?.conversation, { since });
    if (c) relist(c);
    if (openUser === user) showResult(done(c ?? conversations.get(user)));
    return c;
  } catch (err) {
    if (openUser === user) {
      showResult(err.message || t("requestFailed"), { error: true });
      const c = conversations.get(user);
      if (c) renderTools(c);
    }
    return null;
  }
}

/** After a button that is now hidden did its work, the keyboard lands on the one shown. */
function keepFocus(pressed, next) {
  if (pressed.hidden && !next.hidden) next.focus();
}

assigneeSelect.addEventListener("change", () => {
  const assignee = assigneeSelect.value || null;
  change({ assignee }, (c) =>
    c?.assignee ? t("assignedTo", { name: c.assignee === me ? t("you") : adminName(c.assignee) }) : t("nowUnassigned"),
  );
});

resolveButton.addEventListener("click", async () => {
  await change({ status: "resolved" }, () => t("resolvedDone"));
  keepFocus(resolveButton, reopenButton);
});

reopenButton.addEventListener("click", async () => {
  await change({ status: "open" }, () => t("reopenedDone"));
  keepFocus(reopenButton, resolveButton);
});

/** When a snooze chosen now ends: in 1 or 4 hours, tomorrow at 9:00 (local time), in a week. */
function snoozeEnd(choice, now = new Date()) {
  const end = new Date(now.getTime());
  if (choice === "4h") end.setTime(now.getTime() + 4 * 3600e3);
  else if (choice === "week") end.setDate(end.getDate() + 7);
  else if (choice === "tomorrow") {
    end.setDate(end.getDate() + 1);
    end.setHours(9, 0, 0, 0);
  } else end.setTime(now.getTime() + 3600e3);
  return end;
}

snoozeButton.addEventListener("click", async () => {
  const until = snoozeEnd(snoozeFor.value).toISOString();
  await change({ status: "snoozed", snoozed_until: until }, (c) =>
    t("snoozedUntil", { time: formatWhen(c?.snoozedUntil ?? until) }),
  );
  keepFocus(snoozeButton, reopenButton);
});

/** "Billing, VIP, billing" -> ["billing", "vip"]: the server takes lower case only. */
const parseLabels = (text) => [
  ...new Set(
    text
      .split(",")
      .map((label) => label.trim().toLowerCase())
      .filter(Boolean),
  ),
];

let labelsSaving = null; // the labels on their way, as a key
async function saveLabels() {
  const c = openUser && conversations.get(openUser);
  if (!c) return;
  const labels = parseLabels(labelsInput.value);
  const key = [...labels].sort().join(",");
  if (key === [...c.labels].sort().join(",") || key === labelsSaving) {
    if (!labelsSaving) labelsInput.value = c.labels.join(", ");
    return;
  }
  labelsSaving = key;
  try {
    const done = await change({ labels }, () => t("labelsSaved"));
    if (done && openUser === done.user) labelsInput.value = done.labels.join(", ");
  } finally {
    labelsSaving = null;
  }
}

labelsInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.isComposing) {
    event.preventDefault();
    saveLabels();
  }
});
labelsInput.addEventListener("change", saveLabels);

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
  const focused = document.activeElement;
  if (previous !== user) {
    composer.stopTyping();
    noteCheck.checked = false; // a note is chosen for one conversation at a time
    uploads.clear(); // and files: never sent to someone else than they were chosen for
    form.classList.remove("is-note");
    showResult("");
  }
  openUser = user;
  main.classList.add("has-open");
  for (const other of [previous, user]) if (other && conversations.has(other)) renderEntry(conversations.get(other));
  roleResult.textContent = "";
  loadAdminsSoon();
  composer.loadDraft();
  picker.close();
  typing.clear();
  window.history.replaceState(null, "", `#${encodeURIComponent(user)}`);
  await thread.reset(historyOf(user));
  if (openUser !== user) return;
  for (const entry of outbox.entries()) if (entry.to === user) thread.addPending(entry, outbox.state);
  unreadOpen = c.unread > 0 || thread.byId.size > 0;
  c.unread = 0;
  renderEntry(c);
  markRead();
  // To the message box, unless the keyboard went somewhere else (the controls) meanwhile.
  if (document.activeElement === focused || document.activeElement === document.body) textarea.focus();
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
  const c = entry(user, message.to === ADMINS ? nameOfMessage(message) : user);
  if (!c.last || message.id > c.last.id) c.last = message;
  if (message.to === ADMINS) {
    if (user === openUser) unreadOpen = true;
    else c.unread += 1;
  }
  if (c.status === null) refreshSoon();
  relist(c, { known });
  markRead();
}

// ---- the socket ------------------------------------------------------------------------------

const socket = openSocket({
  onConnect: async () => {
    try {
      // Without the list, `sync` from 0 would count every old message as unread. Once it is
      // there, it is listed again: `conversation` events may have been missed meanwhile.
      if (!listLoaded && narrowed()) await loadNewest();
      await loadList({ merge: listLoaded });
    } catch (err) {
      setStatus(err.message || t("requestFailed"), "bad");
      return;
    }
    loadAdmins();
    await catchUp(socket, () => lastId, handle);
    markRead();
  },
});

// Replies and notes: everything in this admin's outbox, each to its `to`.
const outbox = new Outbox(socket, {
  onStored: handle,
  onRefused: (entry, reason) => {
    if (entry.to === openUser) thread.setFailed(entry.id, reason);
    else setStatus(`${t("failed")}: ${reason}`, "bad");
  },
  onState: (entry, state) => thread.setState(entry.id, state),
});

socket.on("mensaje_privado", handle);

// Any change of a conversation's state, by anyone (another admin, the server).
socket.on("conversation", (data) => {
  const known = Boolean(data && conversations.has(data.user));
  const c = adopt(data);
  if (!c) return;
  c.stamp = ++stamp;
  relist(c, { known });
  updateTitle();
});

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

// Bound before the composer: while it is open, the picker takes Enter (and the arrows, Tab, Escape).
const picker = bindCannedPicker({
  textarea,
  listbox: document.getElementById("canned"),
  enabled: () => openUser !== null,
  nameOf: () => (openUser ? nameOf(openUser) : ""),
});

const composer = bindComposer(socket, {
  form,
  textarea,
  errorEl,
  counter: document.getElementById("composer-count"),
  target: () => (openUser ? { to: openUser, note: noteCheck.checked } : null),
  draft: () => (openUser ? `draft:${openUser}` : null),
  uploads,
  onSend: ({ to, note }, text, attachments) => {
    const entry = outbox.add(to, text, { note, attachments });
    thread.addPending(entry, outbox.state);
    outbox.kick();
  },
});

noteCheck.addEventListener("change", () => {
  form.classList.toggle("is-note", noteCheck.checked);
  if (noteCheck.checked) composer.stopTyping(); // the user is not told of a note being written
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
  roleActions.hidden = c.visitor; // a visitor stays a user
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
    loadAdmins(); // the assignee's choices change with the team
  } catch (err) {
    roleResult.classList.add("is-error");
    roleResult.textContent = err.message || t("requestFailed");
  }
}

makeAdmin.addEventListener("click", () => setRole("admin"));
makeUser.addEventListener("click", () => setRole("user"));

// ---- start -----------------------------------------------------------------------------------

try {
  if (narrowed()) await loadNewest();
  await loadList();
} catch (err) {
  setStatus(err.message || t("requestFailed"), "bad");
}
socket.connect(); // and then the team (loadAdmins), on every connection
const wanted = decodeURIComponent(window.location.hash.slice(1));
if (wanted && conversations.has(wanted)) openConversation(wanted);
