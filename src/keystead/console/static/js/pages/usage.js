// #/usage: what the Ubiq clients reported, per day, by dataset and by key: charts, a
// table, and the same rows as a CSV file.

import { api, url } from "../api.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib.js";
import { setParams } from "../router.js";
import { ErrorAlert, Field, Loading, PageHead, formatNumber, useResource } from "../ui.js";

const COLORS = ["#0b5cad", "#b42318", "#116329", "#7a4a00", "#6f42c1", "#0e7490", "#be185d", "#4b5563"];
const MAX_SERIES = 7; // then "others"
const DAY = 86400;
const MAX_DAYS = 731; // two years a chart: one point a day stays readable

let uplotLoading = null;
/** uPlot is only needed here: load it the first time a chart is drawn. */
function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!uplotLoading) {
    uplotLoading = new Promise((resolve, reject) => {
      const style = document.createElement("link");
      style.rel = "stylesheet";
      style.href = "/console/vendor/uPlot.min.css";
      document.head.appendChild(style);
      const script = document.createElement("script");
      script.src = "/console/vendor/uPlot.iife.min.js";
      script.onload = () => resolve(window.uPlot);
      script.onerror = () => reject(new Error("the chart library did not load"));
      document.head.appendChild(script);
    });
  }
  return uplotLoading;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function daysBetween(since, until) {
  const days = [];
  for (let t = Date.parse(`${since}T00:00:00Z`); t <= Date.parse(`${until}T00:00:00Z`); t += DAY * 1000) {
    days.push(isoDay(new Date(t)));
  }
  return days;
}

/** Counts per day for each series (`labelOf(row)`), the largest first, the rest summed.
 * Labels that differ only in case are one series (clients spell dataset names as they
 * like; Keystead compares them without case), shown in their most used spelling. */
export function seriesBy(rows, days, rawLabelOf) {
  const spellings = new Map();
  for (const row of rows) {
    const label = rawLabelOf(row);
    const key = label.toLowerCase();
    const counts = spellings.get(key) || new Map();
    counts.set(label, (counts.get(label) || 0) + row.count);
    spellings.set(key, counts);
  }
  const shownAs = new Map(
    [...spellings].map(([key, counts]) => [key, [...counts].sort((a, b) => b[1] - a[1])[0][0]]),
  );
  const labelOf = (row) => shownAs.get(rawLabelOf(row).toLowerCase());
  const totals = new Map();
  for (const row of rows) totals.set(labelOf(row), (totals.get(labelOf(row)) || 0) + row.count);
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([label]) => label);
  const shown = ranked.slice(0, MAX_SERIES);
  const labels = ranked.length > MAX_SERIES ? [...shown, "(all others)"] : shown;
  const index = new Map(days.map((d, i) => [d, i]));
  const values = labels.map(() => days.map(() => 0));
  for (const row of rows) {
    const at = index.get(row.day);
    if (at === undefined) continue;
    const label = labelOf(row);
    const which = shown.includes(label) ? shown.indexOf(label) : labels.length - 1;
    values[which][at] += row.count;
  }
  return { labels, values, totals: labels.map((l, i) => [l, values[i].reduce((a, b) => a + b, 0)]) };
}

function Chart({ title, days, series }) {
  const box = useRef(null);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    let chart = null;
    let cancelled = false;
    const draw = (uPlot) => {
      if (cancelled || !box.current) return;
      if (chart) chart.destroy();
      const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
      chart = new uPlot(
        {
          width: Math.max(280, box.current.clientWidth),
          height: 260,
          scales: { x: { time: true } },
          axes: [{}, { values: (u, ticks) => ticks.map((t) => formatNumber(t)) }],
          series: [
            { label: "Day", value: (u, v) => (v == null ? "—" : isoDay(new Date(v * 1000))) },
            ...series.labels.map((label, i) => ({
              label,
              stroke: COLORS[i % COLORS.length],
              width: 2,
              points: { show: days.length <= 62 },
            })),
          ],
        },
        [xs, ...series.values],
        box.current,
      );
    };
    loadUplot().then(draw, setFailed);
    const resized = () => loadUplot().then(draw);
    window.addEventListener("resize", resized);
    return () => {
      cancelled = true;
      window.removeEventListener("resize", resized);
      if (chart) chart.destroy();
    };
  }, [days, series]);
  const summary = series.totals.map(([l, t]) => `${l}: ${formatNumber(t)}`).join(", ");
  return html`<figure class="panel" style=${{ margin: "0 0 1rem" }}>
    <figcaption><h2>${title}</h2></figcaption>
    ${failed && html`<p class="error">${failed.message}</p>`}
    <div class="chart" ref=${box} role="img" aria-label=${`${title}, ${days[0]} to ${days[days.length - 1]}. Totals: ${summary || "none"}.`}></div>
    <table class="small" style=${{ marginTop: ".5rem" }}>
      <caption class="visually-hidden">${title}: totals</caption>
      <thead><tr><th scope="col">Series</th><th scope="col" class="num">Operations</th></tr></thead>
      <tbody>${series.totals.map(([label, total], i) => html`<tr>
        <td><span aria-hidden="true" style=${{ color: COLORS[i % COLORS.length] }}>■ </span>${label}</td>
        <td class="num">${formatNumber(total)}</td></tr>`)}</tbody>
    </table>
  </figure>`;
}

export function UsagePage({ route }) {
  const today = isoDay(new Date());
  const since = route.params.since || isoDay(new Date(Date.now() - 29 * DAY * 1000));
  const until = route.params.until || today;
  const span = (Date.parse(`${until}T00:00:00Z`) - Date.parse(`${since}T00:00:00Z`)) / 86400000 + 1;
  const valid = Number.isFinite(span) && span >= 1 && span <= MAX_DAYS;
  const rows = useResource(
    () => (valid ? api.get("/usage", { since, until }) : Promise.resolve(null)),
    [since, until],
  );
  const refused = useResource(
    () => (valid ? api.get("/usage/refused", { since, until }) : Promise.resolve(null)),
    [since, until],
  );
  const days = useMemo(() => (valid ? daysBetween(since, until) : []), [since, until, valid]);
  const byDataset = useMemo(
    () => rows.data && seriesBy(rows.data, days, (r) => r.dataset || `${r.dataset_type} (the client named none)`),
    [rows.data, days],
  );
  const byKey = useMemo(
    () => rows.data && seriesBy(rows.data, days, (r) => r.api_key_name || r.api_key),
    [rows.data, days],
  );
  return html`<${PageHead} title="Usage">
      <a class="button" href=${url("/usage.csv", { since, until })} download>Download CSV</a>
    <//>
    <p class="muted">Encrypt and decrypt operations the Ubiq clients reported (they report in batches, so the
      last minutes may be missing; a client signed in with Entra reports none). Days are in UTC.</p>
    <div class="toolbar">
      <${Field} id="usage-since" label="From (day)">
        <input id="usage-since" type="date" value=${since} max=${until}
          onChange=${(e) => e.target.value && setParams(route, { since: e.target.value })} />
      <//>
      <${Field} id="usage-until" label="To (day)">
        <input id="usage-until" type="date" value=${until} min=${since}
          onChange=${(e) => e.target.value && setParams(route, { until: e.target.value })} />
      <//>
    </div>
    ${!valid && html`<p class="error" role="alert">${span < 1 || !Number.isFinite(span)
      ? "Choose a first day on or before the last day."
      : `Choose at most ${MAX_DAYS} days (two years); this range has ${formatNumber(span)}.`}</p>`}
    <${ErrorAlert} error=${rows.error} />
    ${refused.data && refused.data.length > 0 && html`<section class="panel warning" aria-labelledby="refused-title">
      <h2 id="refused-title">Reports refused over a key's limit</h2>
      <p>These keys reported more usage entries than one key may store (per minute or per day). Keystead
        answered 429 and did not store those entries; a steady stream of them from one key is worth a look
        (suspend the key from its page if it is misused).</p>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Day</th><th scope="col">API key</th><th scope="col" class="num">Reports</th>
          <th scope="col" class="num">Entries not stored</th></tr></thead>
        <tbody>${refused.data.map((r) => html`<tr><td>${r.day}</td>
          <td>${r.api_key_name ? html`<a href=${`#/api-keys/${encodeURIComponent(r.api_key)}`}>${r.api_key_name}</a>` : html`<code>${r.api_key}</code>`}</td>
          <td class="num">${formatNumber(r.reports)}</td><td class="num">${formatNumber(r.entries)}</td></tr>`)}</tbody>
      </table></div>
    </section>`}
    ${!valid ? null : !rows.data ? html`<${Loading} what="Loading usage" />` : !rows.data.length
      ? html`<p class="muted">No usage reported from ${since} to ${until}.</p>`
      : html`<${Chart} title="Operations per day, by dataset" days=${days} series=${byDataset} />
        <${Chart} title="Operations per day, by API key" days=${days} series=${byKey} />
        <details class="panel"><summary>Every row (${formatNumber(rows.data.length)})</summary>
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">Day</th><th scope="col">Dataset</th><th scope="col">API key</th>
              <th scope="col">Action</th><th scope="col" class="num">Count</th></tr></thead>
            <tbody>${rows.data.map((r) => html`<tr><td>${r.day}</td><td>${r.dataset}</td>
              <td>${r.api_key_name || html`<code>${r.api_key}</code>`}</td><td>${r.action}</td>
              <td class="num">${formatNumber(r.count)}</td></tr>`)}</tbody>
          </table></div>
        </details>`}`;
}
