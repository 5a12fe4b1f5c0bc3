// Small inline icons (SVG elements, not images: nothing to fetch, nothing for the CSP).

import { html } from "./lib.js";

export function PersonIcon() {
  return html`<svg class="icon" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">
    <circle cx="8" cy="5" r="3" fill="currentColor" />
    <path d="M2 15c0-3.3 2.7-5.5 6-5.5s6 2.2 6 5.5z" fill="currentColor" />
  </svg>`;
}

export function ServerIcon() {
  return html`<svg class="icon" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true" focusable="false">
    <rect x="2" y="2" width="12" height="5" rx="1" fill="none" stroke="currentColor" stroke-width="1.5" />
    <rect x="2" y="9" width="12" height="5" rx="1" fill="none" stroke="currentColor" stroke-width="1.5" />
    <circle cx="5" cy="4.5" r="1" fill="currentColor" /><circle cx="5" cy="11.5" r="1" fill="currentColor" />
  </svg>`;
}
