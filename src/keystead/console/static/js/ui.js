// Shared pieces of every page: fields with their hint and error, copyable values, dialogs,
// tables, pagers, badges, times, and the hooks that load data and hold forms.

import { describe } from "./api.js";
import { createContext, html, useCallback, useContext, useEffect, useRef, useState } from "./lib.js";

export const SessionContext = createContext(null);

/** The signed-in admin, the account, and whether they may change anything. */
export function useSession() {
  return useContext(SessionContext);
}

let nextId = 0;
export function useId(prefix = "f") {
  const ref = useRef(null);
  if (ref.current === null) ref.current = `${prefix}-${++nextId}`;
  return ref.current;
}

/** Load data; `reload()` loads again. Stale answers (after deps changed) are ignored. */
export function useResource(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve()
      .then(load)
      .then(
        (data) => mine === generation.current && setState({ data, error: null, loading: false }),
        (error) => mine === generation.current && setState({ data: null, error, loading: false }),
      );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run, setData: (data) => setState((s) => ({ ...s, data })) };
}

/** A form's values, field errors and submit state; values survive a refusal. */
export function useForm(initial) {
  const [values, setValues] = useState(initial);
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (name) => (event) => {
    const target = event.target;
    const value = target.type === "checkbox" ? target.checked : target.value;
    setValues((v) => ({ ...v, [name]: value }));
    setErrors((e) => ({ ...e, [name]: undefined }));
  };
  async function submit(validate, action) {
    const found = validate ? validate(values) : {};
    setMessage(null);
    if (Object.values(found).some(Boolean)) {
      setErrors(found);
      return false;
    }
    setBusy(true);
    try {
      await action(values);
      setErrors({});
      return true;
    } catch (error) {
      setErrors(error.fields || {});
      setMessage(error);
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { values, setValues, set, errors, setErrors, message, setMessage, busy, submit };
}

export function Alert({ kind = "info", children }) {
  const role = kind === "error" ? "alert" : "status";
  return html`<div class=${`alert ${kind}`} role=${role}>${children}</div>`;
}

/** An API error in plain words, or nothing. */
export function ErrorAlert({ error }) {
  if (!error) return null;
  return html`<${Alert} kind="error"><p>${describe(error)}</p><//>`;
}

export function Loading({ what = "Loading" }) {
  return html`<p class="muted" role="status" aria-live="polite">${what}…</p>`;
}

/** One form field: label, control, hint and the error that says what to fix. */
export function Field({ id, label, hint, error, children }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${children}
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    ${error && html`<p class="error" id=${`${id}-error`}>${error}</p>`}
  </div>`;
}

function describedBy(id, hint, error, extra) {
  return [hint && `${id}-hint`, error && `${id}-error`, extra].filter(Boolean).join(" ") || undefined;
}

export function TextInput({ id, label, hint, error, value, onInput, type = "text", "aria-describedby": extra, ...rest }) {
  return html`<${Field} id=${id} label=${label} hint=${hint} error=${error}>
    <input
      id=${id}
      type=${type}
      value=${value ?? ""}
      onInput=${onInput}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${describedBy(id, hint, error, extra)}
      ...${rest}
    />
  <//>`;
}

export function SelectInput({ id, label, hint, error, value, onInput, options, "aria-describedby": extra, ...rest }) {
  return html`<${Field} id=${id} label=${label} hint=${hint} error=${error}>
    <select
      id=${id}
      value=${value}
      onChange=${onInput}
      aria-invalid=${error ? "true" : undefined}
      aria-describedby=${describedBy(id, hint, error, extra)}
      ...${rest}
    >
      ${options.map(([v, text]) => html`<option value=${v} selected=${v === value}>${text}</option>`)}
    </select>
  <//>`;
}

function restore(element) {
  // Later, so that a dialog closing because its page changed does not steal the new
  // page's focus, and only if the element is still there to take it.
  setTimeout(() => {
    if (element && element.isConnected && typeof element.focus === "function") {
      const active = document.activeElement;
      if (!active || active === document.body) element.focus();
    }
  }, 0);
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http on a non-local host has no clipboard API: the old way still works.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.appendChild(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

export function CopyButton({ text, label = "Copy", what }) {
  const [done, setDone] = useState(null);
  async function copy() {
    try {
      await copyText(text);
      setDone("Copied");
    } catch {
      setDone("Copy failed: select the text and copy it");
    }
    setTimeout(() => setDone(null), 2500);
  }
  return html`<button type="button" onClick=${copy} aria-label=${what ? `${label} ${what}` : label}>
      ${label}
    </button>
    <span class="small muted" role="status" aria-live="polite">${done || ""}</span>`;
}

/** A read-only value with a copy button (URLs, ids, secrets shown once). */
export function CopyField({ id, label, value, hint }) {
  return html`<${Field} id=${id} label=${label} hint=${hint}>
    <div class="copy">
      <input id=${id} readonly value=${value} aria-describedby=${hint ? `${id}-hint` : undefined}
        onFocus=${(e) => e.target.select()} />
      <${CopyButton} text=${value} what=${label} />
    </div>
  <//>`;
}

/** A modal dialog (the native <dialog>: focus stays inside, Escape closes it). When it
 * closes, or goes away with its page, focus returns to what had it before. */
export function Dialog({ open, title, onClose, children, labelId }) {
  const ref = useRef(null);
  const opener = useRef(null);
  const generated = useId("dialog");
  const id = labelId || generated;
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      opener.current = document.activeElement;
      dialog.showModal();
    }
    if (!open && dialog.open) {
      dialog.close();
      restore(opener.current);
    }
  }, [open]);
  useEffect(() => () => restore(opener.current), []);
  return html`<dialog ref=${ref} aria-labelledby=${id}
      onCancel=${(e) => { e.preventDefault(); onClose && onClose(); }}>
    ${open && html`<div class="dialog-body">
      <h2 id=${id}>${title}</h2>
      ${children}
    </div>`}
  </dialog>`;
}

/** Ask before a change that cannot be undone; the message names the consequence. With
 * `typed`, the admin must type that text (a name) to confirm. */
export function ConfirmDialog({ open, title, children, confirmLabel, danger = true, typed, onConfirm, onCancel }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const inputId = useId("confirm");
  useEffect(() => {
    if (open) {
      setText("");
      setError(null);
    }
  }, [open]);
  const ready = !typed || text.trim() === typed;
  async function confirm(event) {
    event.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }
  return html`<${Dialog} open=${open} title=${title} onClose=${onCancel}>
    <form onSubmit=${confirm}>
      ${children}
      ${typed && html`<${TextInput} id=${inputId} label=${`Type ${typed} to confirm`} value=${text}
          onInput=${(e) => setText(e.target.value)} autocomplete="off" />`}
      <${ErrorAlert} error=${error} />
      <div class="dialog-actions">
        <button type="button" onClick=${onCancel}>Cancel</button>
        <button type="submit" class=${danger ? "danger" : "primary"} disabled=${!ready || busy}>
          ${busy ? "Working…" : confirmLabel}
        </button>
      </div>
    </form>
  <//>`;
}

export function Badge({ kind = "", children, title }) {
  return html`<span class=${`badge ${kind}`} title=${title}>${children}</span>`;
}

export function EnabledBadge({ enabled, suspended }) {
  if (suspended) return html`<${Badge} kind="bad" title="Suspended by an admin: every request is refused">suspended<//>`;
  return enabled ? html`<${Badge} kind="ok">enabled<//>` : html`<${Badge} kind="off">disabled<//>`;
}

const number = new Intl.NumberFormat("en");
export function formatNumber(value) {
  return number.format(value);
}

const absolute = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "medium" });
export function formatTime(value) {
  return value ? absolute.format(new Date(value)) : "—";
}

export function ago(value) {
  if (!value) return "never";
  const seconds = Math.round((Date.now() - new Date(value).getTime()) / 1000);
  if (seconds < 45) return "just now";
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) {
      const n = Math.round(seconds / size);
      return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
    }
  }
  return `${seconds} seconds ago`;
}

export function Time({ value }) {
  if (!value) return html`<span class="muted">never</span>`;
  return html`<time datetime=${value} title=${formatTime(value)}>${formatTime(value)}</time>`;
}

/** Previous / next over a server-side paged listing. */
export function Pager({ total, limit, offset, onPage, what = "items" }) {
  if (!total) return null;
  const first = offset + 1;
  const last = Math.min(offset + limit, total);
  return html`<nav class="pager" aria-label=${`Pages of ${what}`}>
    <span role="status">${formatNumber(first)}–${formatNumber(last)} of ${formatNumber(total)} ${what}</span>
    <button type="button" disabled=${offset === 0} onClick=${() => onPage(Math.max(0, offset - limit))}>
      Previous
    </button>
    <button type="button" disabled=${last >= total} onClick=${() => onPage(offset + limit)}>Next</button>
  </nav>`;
}

/** Newest-first logs page by id: older / newest. */
export function OlderPager({ items, limit, before, onPage }) {
  return html`<nav class="pager" aria-label="Pages of the log">
    <button type="button" disabled=${!before} onClick=${() => onPage(null)}>Newest</button>
    <button type="button" disabled=${items.length < limit}
      onClick=${() => onPage(items[items.length - 1].id)}>Older</button>
  </nav>`;
}

/** A search box that reports what was typed after a short pause (and on Enter). */
export function SearchBox({ id, label, value, onSearch, placeholder }) {
  const [text, setText] = useState(value || "");
  const timer = useRef(null);
  useEffect(() => setText(value || ""), [value]);
  function changed(event) {
    const next = event.target.value;
    setText(next);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => onSearch(next.trim()), 250);
  }
  function submit(event) {
    event.preventDefault();
    clearTimeout(timer.current);
    onSearch(text.trim());
  }
  return html`<form role="search" class="field search" onSubmit=${submit}>
    <label for=${id}>${label}</label>
    <input id=${id} type="search" value=${text} onInput=${changed} placeholder=${placeholder} autocomplete="off" />
  </form>`;
}

export function PageHead({ title, crumbs, children }) {
  const ref = useRef(null);
  useEffect(() => {
    // A new page: move focus to its heading so keyboard and screen-reader users start there.
    if (ref.current) ref.current.focus();
  }, [title]);
  return html`${crumbs && html`<div class="crumbs">${crumbs}</div>`}
    <div class="page-head">
      <h1 ref=${ref} tabindex="-1">${title}</h1>
      ${children}
    </div>`;
}

/** Offer `text` as a file download (the Ubiq credentials file, a token). */
export function download(name, text, type = "application/octet-stream") {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  document.body.appendChild(link);
  link.click();
  setTimeout(() => {
    URL.revokeObjectURL(link.href);
    link.remove();
  }, 0);
}
