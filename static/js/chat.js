// /chat: a user's conversation with the support team.
import {
  PAGE_SIZE,
  Thread,
  TypingIndicator,
  api,
  bindComposer,
  catchUp,
  me,
  openSocket,
  sendMessage,
  whenVisible,
} from "./common.js";

const log = document.getElementById("log");
const form = document.getElementById("composer");
const textarea = document.getElementById("message");
const errorEl = document.getElementById("composer-error");

let lastId = 0; // greatest message id seen, for `sync`
let unreadFromTeam = false; // admins wrote since we last sent `read`
const baseTitle = document.title;

const nameOf = (user) => user;
const thread = new Thread(log, {
  nameOf,
  olderButton: document.getElementById("older"),
  emptyNote: document.getElementById("empty"),
});
const typing = new TypingIndicator(document.getElementById("typing"), nameOf);

function history(before) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before !== null) query.set("before", String(before));
  return api(`/api/messages?${query}`).then((body) => (Array.isArray(body?.messages) ? body.messages : []));
}

/** A message from history, `sync`, a live event or our own ack. */
function handle(message) {
  if (!message || typeof message.id !== "number") return;
  if (message.from !== me && message.to !== me) return; // not this conversation
  if (message.id > lastId) lastId = message.id;
  const isNew = thread.add(message);
  if (isNew && message.from !== me) {
    typing.set(message.from, false);
    unreadFromTeam = true;
    markRead();
  }
}

function markRead() {
  if (!unreadFromTeam) return;
  if (document.visibilityState !== "visible") {
    document.title = `• ${baseTitle}`;
    return;
  }
  if (!socket.connected) return;
  unreadFromTeam = false;
  document.title = baseTitle;
  socket.emit("read", { up_to: thread.maxId });
}

const socket = openSocket({
  onConnect: () => {
    catchUp(socket, () => lastId, handle).then(markRead);
  },
});

socket.on("mensaje_privado", handle);

socket.on("typing", (data) => {
  if (!data || data.from === me || typeof data.from !== "string") return;
  typing.set(data.from, data.typing === true);
});

whenVisible(markRead);

bindComposer(socket, {
  form,
  textarea,
  errorEl,
  target: () => ({ to: undefined }),
  onSend: (_where, text) => sendMessage(socket, thread, { text, onStored: handle }),
});

// History first, then the socket, whose `sync` picks up from the newest message shown.
await thread.reset(history);
for (const id of thread.byId.keys()) if (id > lastId) lastId = id;
if (thread.maxId && [...thread.byId.values()].some((li) => li.classList.contains("theirs"))) {
  unreadFromTeam = true;
}
socket.connect();
