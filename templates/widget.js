{% whitespace all %}/* supportchat website widget: <script src="https://support.example.com/widget.js" async></script>
   A chat button at the bottom right of the page that opens the support chat in a frame. The page
   gets one element, <supportchat-widget>, whose shadow root holds the button, the frame
   and their styles; the only global read is window.supportchat ({user: {id, name, email, hash}}),
   and none is written. */
(function () {
  "use strict";
  var CONFIG = {% raw config %};
  var script = document.currentScript;
  if (!script || !script.src || document.querySelector("supportchat-widget")) return;

  var server = new URL(script.src, location.href).origin;
  var asked = (script.getAttribute("data-locale") || "").toLowerCase();
  var browser = (navigator.language || "en").slice(0, 2).toLowerCase();
  var lang = CONFIG.strings[asked] ? asked : CONFIG.strings[browser] ? browser : "en";
  var text = CONFIG.strings[lang];
  var given = window.supportchat && typeof window.supportchat === "object" ? window.supportchat : {};
  var user = given.user && typeof given.user === "object" ? given.user : null;
  var identity = null;
  if (user && (typeof user.id === "string" || typeof user.id === "number") && typeof user.hash === "string") {
    identity = { id: String(user.id), hash: user.hash };
    if (typeof user.name === "string") identity.name = user.name;
    if (typeof user.email === "string") identity.email = user.email;
  }
  // Nobody anonymous may chat: without the site's word for who this is, there is no button.
  if (CONFIG.identity === "required" && !identity) return;

  var CSS =
    ":host{all:initial;position:fixed;z-index:2147483647;right:0;bottom:0}" +
    "*{box-sizing:border-box}" +
    ".launcher{all:unset;box-sizing:border-box;position:fixed;right:20px;bottom:20px;width:56px;height:56px;" +
    "border-radius:50%;background:#2456c7;color:#fff;display:flex;align-items:center;justify-content:center;" +
    "cursor:pointer;box-shadow:0 2px 12px rgba(0,0,0,.25)}" +
    ".launcher:hover{background:#1d47a6}" +
    ".launcher:focus-visible{outline:3px solid #f0a500;outline-offset:3px}" +
    ".launcher svg{width:28px;height:28px;fill:currentColor}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;" +
    "background:#b3261e;color:#fff;font:600 13px/22px system-ui,sans-serif;text-align:center}" +
    ".badge[hidden],.panel[hidden]{display:none}" +
    ".panel{position:fixed;right:20px;bottom:88px;width:min(380px,calc(100vw - 40px));" +
    "height:min(600px,calc(100vh - 108px));border-radius:12px;overflow:hidden;background:#fff;" +
    "box-shadow:0 4px 24px rgba(0,0,0,.3)}" +
    ".panel iframe{border:0;width:100%;height:100%;display:block}" +
    // On a phone the open chat takes the screen, with its own Close button.
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100vh;height:100dvh;border-radius:0}" +
    ".launcher.open{display:none}}";

  var host = document.createElement("supportchat-widget");
  var root = host.attachShadow({ mode: "open" });
  // A constructed sheet is not an inline style: it works under the host page's CSP.
  if (root.adoptedStyleSheets !== undefined && typeof CSSStyleSheet === "function") {
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      sheet = null;
    }
  }
  if (!sheet) {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  var panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "supportchat-panel";
  panel.hidden = true;
  var frame = document.createElement("iframe");
  frame.title = text.title;
  frame.src = server + "/widget?locale=" + lang + "&origin=" + encodeURIComponent(location.origin);
  panel.appendChild(frame);

  var button = document.createElement("button");
  button.type = "button";
  button.className = "launcher";
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "supportchat-panel");
  var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z");
  svg.appendChild(path);
  var badge = document.createElement("span");
  badge.className = "badge";
  badge.setAttribute("aria-hidden", "true");
  badge.hidden = true;
  button.appendChild(svg);
  button.appendChild(badge);
  root.appendChild(panel);
  root.appendChild(button);

  var isOpen = false;
  var unread = 0;
  // Where the frame's token is kept when the browser refuses the frame storage of its own.
  var KEEP = "supportchat:widget:" + server;

  function keep(token) {
    try {
      if (typeof token === "string" && token.length <= 4096) localStorage.setItem(KEEP, token);
      else if (token === null) localStorage.removeItem(KEEP);
    } catch (e) {
      // no storage here either: the chat lasts this page view
    }
  }

  function kept() {
    try {
      return localStorage.getItem(KEEP);
    } catch (e) {
      return null;
    }
  }

  function label() {
    if (isOpen) return text.close;
    return unread > 0 ? text.open + ", " + text.unread.replace("{count}", String(unread)) : text.open;
  }

  function show() {
    badge.hidden = isOpen || unread === 0;
    badge.textContent = unread > 99 ? "99+" : String(unread);
    button.setAttribute("aria-label", label());
    button.setAttribute("aria-expanded", String(isOpen));
    button.className = isOpen ? "launcher open" : "launcher";
    panel.hidden = !isOpen;
  }

  function tell(message) {
    message.supportchat = 1;
    if (frame.contentWindow) frame.contentWindow.postMessage(message, server);
  }

  function setOpen(value) {
    if (isOpen === value) return;
    isOpen = value;
    if (isOpen) unread = 0;
    show();
    tell({ type: isOpen ? "open" : "close" });
    if (isOpen) frame.focus();
    else button.focus();
  }

  button.addEventListener("click", function () {
    setOpen(!isOpen);
  });

  window.addEventListener("message", function (event) {
    if (event.origin !== server || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || typeof data !== "object" || data.supportchat !== 1) return;
    if (data.type === "ready") {
      tell({ type: "hello", user: identity, open: isOpen, kept: kept() });
    } else if (data.type === "unread" && typeof data.count === "number") {
      unread = isOpen ? 0 : Math.max(0, Math.min(data.count, 100000) | 0);
      show();
    } else if (data.type === "close") {
      setOpen(false);
    } else if (data.type === "keep") {
      keep(data.token);
    }
  });

  show();
  function attach() {
    document.body.appendChild(host);
  }
  if (document.body) attach();
  else document.addEventListener("DOMContentLoaded", attach);
})();
