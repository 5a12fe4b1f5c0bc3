// Hash routes: #/path/segments?query. The query carries a page's filters, so a filtered
// view is a link (the status strip links to the provisioning log filtered to failures).

import { useEffect, useState } from "./lib.js";

export const DEFAULT_ROUTE = "/profile";

function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // a malformed %-escape: keep it as typed, the page will say "not found"
  }
}

export function parse(hash = window.location.hash) {
  const raw = hash.replace(/^#/, "") || DEFAULT_ROUTE;
  const [path, query = ""] = raw.split("?");
  const segments = path.split("/").filter(Boolean).map(decoded);
  return { path: "/" + segments.map(encodeURIComponent).join("/"), segments, params: Object.fromEntries(new URLSearchParams(query)) };
}

export function href(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return "#" + path + (text ? "?" + text : "");
}

/** A path from segments, each encoded (names may hold '/', '?' or '#'). */
export function pathOf(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

export function navigate(path, params, { replace = false } = {}) {
  const target = href(path, params);
  if (replace) {
    window.history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    window.location.hash = target;
  }
}

export function useRoute() {
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const changed = () => setRoute(parse());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

/** Replace some of the current route's query parameters (filters, page), keeping history
 * short: a filter change replaces the entry rather than adding one per keystroke. The
 * current address is read now (not the route a component saw when it rendered), so a
 * search that lands after another filter changed keeps that filter. */
export function setParams(route, changes, options = { replace: true }) {
  const current = parse();
  const params = current.path === route.path ? current.params : route.params;
  navigate(route.path, { ...params, ...changes }, options);
}
