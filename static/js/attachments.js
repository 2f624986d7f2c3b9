// Attachments: files going up before a message (the "Attach file" button, dropped or pasted
// files, a progress bar each), and the attachments of messages in the log (thumbnails that
// open the full image, other files as links with their name and size). Names are text only.
import { el, session, t } from "./common.js";


const sizeFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** 1,234 bytes as "1.2 KB": the size people read beside a file's name. */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1000) return t("bytes", { n: sizeFormat.format(n) });
  if (n < 1000 * 1000) return `${sizeFormat.format(n / 1000)} KB`;
  return `${sizeFormat.format(n / 1000 / 1000)} MB`;
}

/** Only what the server says an attachment is, each field of its type. */
function attachmentOf(value) {
  if (!value || typeof value.id !== "string" || typeof value.url !== "string") return null;
  return {
    id: value.id,
    name: typeof value.name === "string" ? value.name : "",
    size: Number(value.size) || 0,
    content_type: typeof value.content_type === "string" ? value.content_type : "",
    url: value.url,
    thumbnail_url: typeof value.thumbnail_url === "string" ? value.thumbnail_url : null,
    width: Number(value.width) || null,
    height: Number(value.height) || null,
  };
}

export function attachmentsOf(message) {
  return Array.isArray(message?.attachments) ? message.attachments.map(attachmentOf).filter(Boolean) : [];
}

// ---- showing attachments ---------------------------------------------------------------------

/**
 * With a bearer token (the widget, where the browser sends no cookie), an image or a link
 * cannot carry the token: their bytes are fetched with it and shown from a blob: URL.
 */
const blobs = new Map(); // url -> Promise<object URL>

function viaToken(url) {
  if (!blobs.has(url)) {
    const loaded = fetch(url, { credentials: "omit", headers: { Authorization: `Bearer ${session.token}` } })
      .then((res) => {
        if (!res.ok) throw new Error(String(res.status));
        return res.blob();
      })
      .then((blob) => URL.createObjectURL(blob));
    loaded.catch(() => blobs.delete(url)); // try again next time
    blobs.set(url, loaded);
  }
  return blobs.get(url);
}

function setSource(img, url) {
  if (!session.token) {
    img.src = url;
    return;
  }
  viaToken(url).then(
    (src) => {
      img.src = src;
    },
    () => img.classList.add("broken"),
  );
}

function linkTo(url, attachment, { download }) {
  const a = el("a");
  a.href = url;
  if (download) a.download = attachment.name;
  else {
    a.target = "_blank";
    a.rel = "noopener";
  }
  if (session.token) {
    a.addEventListener("click", (event) => {
      event.preventDefault();
      viaToken(url).then((src) => {
        const open = el("a");
        open.href = src;
        if (download) open.download = attachment.name;
        else open.target = "_blank";
        open.click();
      });
    });
  }
  return a;
}

/** The attachments of a message, or null when it has none. */
export function renderAttachments(attachments) {
  if (attachments.length === 0) return null;
  const box = el("ul", "attachments");
  for (const a of attachments) {
    const li = el("li");
    if (a.thumbnail_url) {
      const link = linkTo(a.url, a, { download: false });
      link.className = "thumb";
      link.title = t("openImage", { name: a.name });
      const img = el("img");
      img.alt = a.name;
      img.loading = "lazy";
      if (a.width && a.height) {
        const scale = Math.min(1, 320 / Math.max(a.width, a.height));
        img.width = Math.max(1, Math.round(a.width * scale));
        img.height = Math.max(1, Math.round(a.height * scale));
      }
      setSource(img, a.thumbnail_url);
      link.append(img);
      li.append(link);
    } else {
      const link = linkTo(a.url, a, { download: true });
      link.className = "file";
      link.append(el("span", "file-name", a.name), el("span", "file-size", ` (${formatSize(a.size)})`));
      li.append(link);
    }
    box.append(li);
  }
  return box;
}

// ---- uploading ---------------------------------------------------------------------------------

/**
 * The files chosen for the next message: each goes up at once (POST /api/uploads, with a
 * progress bar), and can be taken out before sending. `ready()` gives the stored attachments,
 * `busy` says whether any is still going up.
 */
export class Uploads {
  constructor({ button, input, list, dropZone, pasteTarget, onChange = () => {} }) {
    this.list = list;
    this.onChange = onChange;
    this.items = [];
    button.addEventListener("click", () => input.click());
    input.addEventListener("change", () => {
      this.add([...input.files]);
      input.value = "";
    });
    dropZone.addEventListener("dragover", (event) => {
      if (![...(event.dataTransfer?.types ?? [])].includes("Files")) return;
      event.preventDefault();
      dropZone.classList.add("dropping");
    });
    dropZone.addEventListener("dragleave", (event) => {
      if (!dropZone.contains(event.relatedTarget)) dropZone.classList.remove("dropping");
    });
    dropZone.addEventListener("drop", (event) => {
      dropZone.classList.remove("dropping");
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length === 0) return;
      event.preventDefault();
      this.add(files);
    });
    pasteTarget.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData?.files ?? [])];
      if (files.length === 0) return; // text: pasted as usual
      event.preventDefault();
      this.add(files);
    });
  }

  get busy() {
    return this.items.some((item) => item.xhr !== null);
  }

  ready() {
    return this.items.filter((item) => item.attachment).map((item) => item.attachment);
  }

  clear() {
    for (const item of this.items) item.xhr?.abort();
    this.items = [];
    this.render();
  }

  add(files) {
    for (const file of files) {
      const item = { file, xhr: null, loaded: 0, attachment: null, error: "", li: null };
      this.items.push(item);
      this.upload(item);
    }
    this.render();
  }

  remove(item) {
    item.xhr?.abort();
    this.items = this.items.filter((other) => other !== item);
    this.render();
  }

  upload(item) {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", "/api/uploads");
    xhr.setRequestHeader("Content-Type", item.file.type || "application/octet-stream");
    xhr.setRequestHeader("Upload-Name", encodeURIComponent(item.file.name || "file"));
    xhr.setRequestHeader("Accept", "application/json");
    if (session.token) xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      item.loaded = event.loaded / event.total;
      this.renderItem(item);
    });
    const done = (attachment, error) => {
      item.xhr = null;
      item.attachment = attachment;
      item.error = error;
      this.render();
    };
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      const attachment = xhr.status === 201 ? attachmentOf(body?.attachment) : null;
      if (attachment) done(attachment, "");
      else done(null, (body && typeof body.message === "string" && body.message) || t("uploadFailed"));
    });
    xhr.addEventListener("error", () => done(null, t("uploadFailed")));
    xhr.send(item.file);
  }

  renderItem(item) {
    if (!item.li) {
      item.li = el("li", "upload");
      const name = el("span", "upload-name", item.file.name || "file");
      const size = el("span", "upload-size", formatSize(item.file.size));
      const bar = el("progress");
      bar.max = 1;
      bar.setAttribute("aria-label", t("uploading", { name: item.file.name || "file" }));
      const state = el("span", "upload-state");
      const remove = el("button", "remove secondary", "×");
      remove.type = "button";
      remove.setAttribute("aria-label", t("removeFile", { name: item.file.name || "file" }));
      remove.addEventListener("click", () => this.remove(item));
      item.li.append(name, size, bar, state, remove);
    }
    const [, , bar, state] = item.li.children;
    bar.hidden = item.xhr === null;
    bar.value = item.loaded;
    item.li.classList.toggle("failed", item.error !== "");
    state.textContent = item.error ? `${t("failed")}: ${item.error}` : item.attachment ? t("uploaded") : "";
  }

  render() {
    for (const item of this.items) this.renderItem(item);
    this.list.replaceChildren(...this.items.map((item) => item.li));
    this.list.hidden = this.items.length === 0;
    this.onChange();
  }
}

/** The composer's uploads: its "Attach file" button and list, files dropped anywhere on the
 * conversation (`dropZone`) or pasted into the message box. */
export function composerUploads(dropZone) {
  return new Uploads({
    button: document.getElementById("attach"),
    input: document.getElementById("attach-input"),
    list: document.getElementById("uploads"),
    dropZone,
    pasteTarget: document.getElementById("message"),
  });
}

/** `Thread`'s `extras`: a message's attachments. */
export const attachmentsOfMessage = (message) => renderAttachments(attachmentsOf(message));
