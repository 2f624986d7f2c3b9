// A user's conversation with the support team: the page /chat and the website widget.
import { attachmentsOfMessage, composerUploads } from "./attachments.js";
import {
  Outbox,
  PAGE_SIZE,
  Thread,
  TypingIndicator,
  api,
  bindComposer,
  catchUp,
  me,
  openSocket,
  t,
  whenVisible,
} from "./common.js";

/**
 * Run the conversation on this page. `shown()`: whether the reader can see it now (the tab is
 * visible; in the widget, also open), which decides when messages are marked read; call the
 * returned `shownNow()` when that becomes true. `onTeamMessage(message)`: a message of the team
 * arrived while it was not shown.
 */
export async function startConversation({
  shown = () => document.visibilityState === "visible",
  onTeamMessage = () => {},
} = {}) {
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const textarea = document.getElementById("message");
  const errorEl = document.getElementById("composer-error");

  let lastId = 0; // greatest message id seen, for `sync`
  let unreadFromTeam = false; // admins wrote since we last sent `read`
  const baseTitle = document.title;

  // The team is shown by display name only, never by login name (`from_name` of messages and
  // of `typing`; "The support team" for a name not known yet).
  const teamNames = new Map(); // login -> display name
  const nameOfMessage = (message) =>
    typeof message.from_name === "string" && message.from_name ? message.from_name : message.from;
  const nameOfTeammate = (user) => teamNames.get(user) ?? t("team");

  const thread = new Thread(log, {
    nameOf: nameOfMessage,
    olderButton: document.getElementById("older"),
    emptyNote: document.getElementById("empty"),
    onOlderLoaded: (messages) => messages.forEach(learnName),
    extras: attachmentsOfMessage,
  });
  const typing = new TypingIndicator(document.getElementById("typing"), nameOfTeammate);

  function history(before) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (before !== null) query.set("before", String(before));
    return api(`/api/messages?${query}`).then((body) => (Array.isArray(body?.messages) ? body.messages : []));
  }

  function learnName(message) {
    if (message.from !== me && typeof message.from_name === "string" && message.from_name) {
      teamNames.set(message.from, message.from_name);
    }
  }

  /** A message from history, `sync`, a live event or our own ack. */
  function handle(message) {
    if (!message || typeof message.id !== "number") return;
    if (message.from !== me && message.to !== me) return; // not this conversation
    if (message.id > lastId) lastId = message.id;
    learnName(message);
    const isNew = thread.add(message);
    if (isNew && message.from !== me) {
      typing.set(message.from, false);
      unreadFromTeam = true;
      if (!shown()) onTeamMessage(message);
      markRead();
    }
  }

  function markRead() {
    if (!unreadFromTeam) return;
    if (!shown()) {
      if (document.visibilityState !== "visible") document.title = `• ${baseTitle}`;
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

  // Messages to the team: everything in this user's outbox without a `to`.
  const outbox = new Outbox(socket, {
    onStored: handle,
    onRefused: (entry, reason) => thread.setFailed(entry.id, reason),
    onState: (entry, state) => thread.setState(entry.id, state),
  });
  const ours = (entry) => entry.to === undefined || entry.to === "admins";

  socket.on("mensaje_privado", handle);

  socket.on("typing", (data) => {
    if (!data || data.from === me || typeof data.from !== "string") return;
    learnName(data);
    typing.set(data.from, data.typing === true);
  });

  whenVisible(markRead);

  bindComposer(socket, {
    form,
    textarea,
    errorEl,
    counter: document.getElementById("composer-count"),
    target: () => ({ to: undefined }),
    draft: () => "draft",
    uploads: composerUploads(log.closest(".thread")),
    onSend: (_where, text, attachments) => {
      const entry = outbox.add(undefined, text, { attachments });
      thread.addPending(entry, outbox.state);
      outbox.kick();
    },
  });

  // History first, then what is still in the outbox below it, then the socket, whose `sync`
  // picks up from the newest message shown.
  await thread.reset(history);
  for (const id of thread.byId.keys()) if (id > lastId) lastId = id;
  for (const entry of outbox.entries()) if (ours(entry)) thread.addPending(entry, outbox.state);
  if (thread.maxId && [...thread.byId.values()].some((li) => li.classList.contains("theirs"))) {
    unreadFromTeam = true;
  }
  socket.connect();
  return { shownNow: markRead };
}
