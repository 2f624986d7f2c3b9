// The inbox's canned responses: typing "/" in the message box (at its start or after a space)
// lists the team's canned responses whose shortcut matches what follows it. The arrows move,
// Enter or Tab inserts the text (with {{name}} replaced by the conversation's display name) in
// place of "/shortcut", Escape closes. A listbox under the box; the focus stays in the box,
// which points at the chosen option with aria-activedescendant.
import { api, el } from "./common.js";

/** "/" and what is typed of a shortcut so far, just before the caret. */
const TRIGGER = /(?:^|\s)\/([a-z0-9_-]*)$/i;
const FRESH_MS = 30000; // the team's list is asked for again after this long
const SHOWN = 50;

export function bindCannedPicker({ textarea, listbox, enabled, nameOf }) {
  let responses = [];
  let fetchedAt = -Infinity;
  let fetching = null;
  let options = []; // the responses listed
  let active = -1;
  let dismissed = -1; // where the "/" closed with Escape was: not offered again
  let runs = 0; // drops the answers of updates overtaken by later typing
  let inserting = false;

  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-controls", listbox.id);

  async function load() {
    if (Date.now() - fetchedAt < FRESH_MS) return;
    fetching ??= api("/api/canned-responses")
      .then((body) => {
        const found = Array.isArray(body?.canned_responses) ? body.canned_responses : [];
        responses = found
          .filter((r) => r && typeof r.shortcut === "string" && typeof r.text === "string")
          .sort((a, b) => (a.shortcut < b.shortcut ? -1 : a.shortcut > b.shortcut ? 1 : 0));
      })
      .catch(() => {}) // none offered; asked again later
      .finally(() => {
        fetchedAt = Date.now();
        fetching = null;
      });
    await fetching;
  }

  /** The "/shortcut" being typed: {start, end, query}, or null. */
  function typed() {
    if (!enabled()) return null;
    const caret = textarea.selectionStart;
    if (caret !== textarea.selectionEnd) return null;
    const found = TRIGGER.exec(textarea.value.slice(0, caret));
    if (!found) return null;
    return { start: caret - found[1].length - 1, end: caret, query: found[1].toLowerCase() };
  }

  const fill = (text) => text.split("{{name}}").join(nameOf());

  function close() {
    options = [];
    active = -1;
    listbox.hidden = true;
    listbox.replaceChildren();
    textarea.removeAttribute("aria-activedescendant");
  }

  function choose(index) {
    active = index;
    for (const [i, li] of [...listbox.children].entries()) li.setAttribute("aria-selected", String(i === active));
    const li = listbox.children[active];
    if (li) {
      textarea.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    }
  }

  function render(keep) {
    listbox.replaceChildren(
      ...options.map((response, i) => {
        const li = el("li", "option");
        li.id = `${listbox.id}-${i}`;
        li.setAttribute("role", "option");
        li.append(el("span", "shortcut", `/${response.shortcut}`), el("span", "text", fill(response.text)));
        li.addEventListener("mousedown", (event) => event.preventDefault()); // the box keeps the focus
        li.addEventListener("click", () => insert(response));
        return li;
      }),
    );
    listbox.hidden = false;
    choose(Math.max(0, options.indexOf(keep)));
  }

  async function update() {
    const run = ++runs;
    let at = typed();
    if (!at) dismissed = -1;
    if (!at || at.start === dismissed) {
      close();
      return;
    }
    await load();
    if (run !== runs) return;
    at = typed(); // typed on meanwhile
    if (!at || at.start === dismissed) {
      close();
      return;
    }
    const keep = options[active];
    const first = responses.filter((r) => r.shortcut.startsWith(at.query));
    const then = responses.filter((r) => !r.shortcut.startsWith(at.query) && r.shortcut.includes(at.query));
    options = [...first, ...then].slice(0, SHOWN);
    if (options.length === 0) close();
    else render(keep);
  }

  function insert(response) {
    const at = typed();
    if (!at) return;
    textarea.setRangeText(fill(response.text), at.start, at.end, "end");
    close();
    inserting = true;
    try {
      textarea.dispatchEvent(new Event("input", { bubbles: true })); // drafts, counter, typing
    } finally {
      inserting = false;
    }
    textarea.focus();
  }

  textarea.addEventListener("keydown", (event) => {
    if (listbox.hidden || event.isComposing || options.length === 0) return;
    const plain = !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      choose((active + step + options.length) % options.length);
    } else if ((event.key === "Enter" || event.key === "Tab") && plain) {
      event.preventDefault(); // the message is not sent: the response goes into it
      insert(options[active] ?? options[0]);
    } else if (event.key === "Escape") {
      event.preventDefault();
      dismissed = typed()?.start ?? -1;
      close();
    }
  });
  textarea.addEventListener("input", () => {
    if (!inserting) update();
  });
  textarea.addEventListener("click", () => update());
  textarea.addEventListener("keyup", (event) => {
    if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) update();
  });
  textarea.addEventListener("blur", () => {
    runs += 1;
    close();
  });

  return { close };
}
