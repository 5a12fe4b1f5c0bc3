// Shared pieces of the two logs: a time-range filter and the newest-first pager.

import { html, useEffect, useState } from "../lib.js";
import { Field } from "../ui.js";

/** ISO time (any zone) → the value of a datetime-local input, in the browser's zone. */
export function toLocalInput(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** A datetime-local value (the browser's zone) → ISO in UTC, or "" when empty. */
export function fromLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

export function TimeRange({ since, until, onChange, idPrefix }) {
  const [from, setFrom] = useState(toLocalInput(since));
  const [to, setTo] = useState(toLocalInput(until));
  useEffect(() => setFrom(toLocalInput(since)), [since]);
  useEffect(() => setTo(toLocalInput(until)), [until]);
  return html`
    <${Field} id=${`${idPrefix}-since`} label="From">
      <input id=${`${idPrefix}-since`} type="datetime-local" value=${from}
        onChange=${(e) => { setFrom(e.target.value); onChange({ since: fromLocalInput(e.target.value) }); }} />
    <//>
    <${Field} id=${`${idPrefix}-until`} label="Until">
      <input id=${`${idPrefix}-until`} type="datetime-local" value=${to}
        onChange=${(e) => { setTo(e.target.value); onChange({ until: fromLocalInput(e.target.value) }); }} />
    <//>`;
}
