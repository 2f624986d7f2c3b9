// The widget's frame: the conversation of /chat, for a website visitor, inside a site of
// WIDGET_ORIGINS. The host page (widget.js there) and this frame talk by postMessage only,
// each checking the other's origin and window; the host page sends the identity it was given
// (window.supportchat.user), open/close and the token it keeps for this frame (see `kept`);
// this frame sends its unread count, "close", and "keep" when it cannot store its token.
//
// Browsers block cookies in other sites' frames: the visitor's token lives in this frame's
// own storage and goes as a bearer token. A visitor who never opens the chat costs the server
// nothing: no visitor is made, no socket opened, until it is opened (or a token was kept from
// an earlier visit, or the site says who the visitor is).

const app = document.getElementById("app");
const HOST = app.dataset.host; // the embedding site's origin, one of WIDGET_ORIGINS
const REQUIRED = app.dataset.identity === "required";
const TOKEN_KEY = "supportchat:widget:token";
const errorEl = document.getElementById("widget-error");
const words = document.getElementById("widget-i18n").dataset;

/**
 * The visitor's token: in this frame's own localStorage. Browsers that refuse storage to other
 * sites' frames (Chromium's incognito windows, Brave, any browser told to block third-party
 * cookies) get it kept by the host page instead, in its own storage under this server's name,
 * and handed back at every load ("hello"); without either, it lasts this page view.
 */
const kept = {
  memory: null,
  storage() {
    try {
      const storage = window.localStorage;
      storage.getItem(TOKEN_KEY);
      return storage;
    } catch {
      return null;
    }
  },
  get() {
    return this.storage()?.getItem(TOKEN_KEY) ?? this.memory;
  },
  set(token) {
    this.memory = token;
    const storage = this.storage();
    try {
      if (storage) {
        storage.setItem(TOKEN_KEY, token);
        return;
      }
    } catch {
      // full: the host page keeps it
    }
    tell({ type: "keep", token });
  },
  remove() {
    this.memory = null;
    const storage = this.storage();
    if (storage) storage.removeItem(TOKEN_KEY);
    else tell({ type: "keep", token: null });
  },
};

let identity = null; // {id, hash, name?, email?} from the host page, or null: anonymous
let open = false;
let unread = 0;
let started = null; // the promise of the running conversation
let greeted = false;

function tell(message) {
  if (window.parent !== window) window.parent.postMessage({ supportchat: 1, ...message }, HOST);
}

function fail(text) {
  errorEl.textContent = text;
  errorEl.hidden = false;
}

/** Only the four strings the contract names, each a string of sensible length. */
function identityFrom(user) {
  if (!user || typeof user !== "object") return null;
  const pick = (v) => (typeof v === "string" && v.length > 0 && v.length <= 1000 ? v : undefined);
  const id = typeof user.id === "number" ? String(user.id) : pick(user.id);
  const hash = pick(user.hash);
  if (id === undefined || hash === undefined) return null;
  const found = { id, hash };
  if (pick(user.name)) found.name = user.name;
  if (pick(user.email)) found.email = user.email;
  return found;
}

class Refused extends Error {
  constructor(status, body) {
    super((body && body.message) || String(status));
    this.status = status;
  }
}

async function visitors(body) {
  const res = await fetch("/api/visitors", {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok || !data || typeof data.token !== "string" || !data.user) throw new Refused(res.status, data);
  return data;
}

/** A token for this visitor: the site's identity, else the one kept here, else a new visitor. */
async function signIn() {
  if (identity) {
    try {
      return await visitors(identity);
    } catch (err) {
      // A name or e-mail the server does not take (too long, not an address): the id and its
      // hash alone still say who this is.
      if (!(err instanceof Refused) || err.status !== 400) throw err;
      return visitors({ id: identity.id, hash: identity.hash });
    }
  }
  if (REQUIRED) throw new Refused(403, null);
  const token = kept.get();
  if (token) {
    try {
      return await visitors({ token });
    } catch (err) {
      if (!(err instanceof Refused) || err.status !== 401) throw err;
      kept.remove(); // expired for good, or revoked: a new visitor
    }
  }
  return visitors({});
}

async function start() {
  let signed;
  try {
    signed = await signIn();
  } catch (err) {
    const status = err instanceof Refused ? err.status : 0;
    fail(status === 403 ? words.required : status === 429 ? words.tooMany : words.failed);
    throw err;
  }
  kept.set(signed.token);
  app.dataset.me = signed.user.user;
  app.dataset.role = signed.user.rol;
  // common.js reads who we are when it loads: only now.
  const common = await import("./common.js");
  common.session.token = signed.token;
  common.session.ended = () => {
    // Revoked or refused: forget the token and start again with a fresh one.
    kept.remove();
    window.location.reload();
  };
  const { startConversation } = await import("./conversation.js");
  return startConversation({
    shown: () => open && document.visibilityState === "visible",
    onTeamMessage: () => {
      unread += 1;
      tell({ type: "unread", count: unread });
    },
  });
}

function ensureStarted() {
  if (!started) {
    started = start();
    started.catch(() => {
      started = null; // the next opening tries again
    });
  }
  return started;
}

async function opened() {
  open = true;
  unread = 0;
  tell({ type: "unread", count: 0 });
  try {
    const conversation = await ensureStarted();
    if (open) {
      conversation.shownNow();
      document.getElementById("message").focus();
    }
  } catch {
    // shown in the frame
  }
}

window.addEventListener("message", (event) => {
  if (event.source !== window.parent || event.origin !== HOST) return;
  const data = event.data;
  if (!data || typeof data !== "object" || data.supportchat !== 1) return;
  if (data.type === "hello" && !greeted) {
    greeted = true;
    identity = identityFrom(data.user);
    if (typeof data.kept === "string" && data.kept.length <= 4096) kept.memory = data.kept;
    // A returning or identified visitor connects at once (the unread count needs it).
    if (identity || (!REQUIRED && kept.get())) ensureStarted().catch(() => {});
    if (data.open === true) opened();
  } else if (data.type === "open") {
    opened();
  } else if (data.type === "close") {
    open = false;
  }
});

document.getElementById("close").addEventListener("click", () => tell({ type: "close" }));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") tell({ type: "close" });
});

tell({ type: "ready" });
