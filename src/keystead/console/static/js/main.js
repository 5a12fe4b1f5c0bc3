// The console: who is signed in, the frame around every page, and which page a route shows.

import { api, onUnauthenticated, setCsrfToken } from "./api.js";
import { html, render, useEffect, useState } from "./lib.js";
import { AdminsPage } from "./pages/admins.js";
import { ApiKeyPage, ApiKeysPage } from "./pages/apikeys.js";
import { AuditPage } from "./pages/audit.js";
import { DatasetGroupPage, DatasetGroupsPage } from "./pages/groups.js";
import { DatasetPage, DatasetsPage } from "./pages/datasets.js";
import { DirectoryGroupPage, DirectoryPage, DirectoryUserPage } from "./pages/directory.js";
import { ProfilePage } from "./pages/profile.js";
import { ProvisioningPage } from "./pages/provisioning.js";
import { ChoosePassword, SignIn } from "./pages/signin.js";
import { UsagePage } from "./pages/usage.js";
import { href, useRoute } from "./router.js";
import { Alert, Loading, SessionContext } from "./ui.js";

const NAV = [
  ["/profile", "Account"],
  ["/api-keys", "API keys"],
  ["/datasets", "Datasets"],
  ["/dataset-groups", "Dataset groups"],
  ["/directory", "Directory"],
  ["/provisioning", "Provisioning log"],
  ["/usage", "Usage"],
  ["/audit", "Audit log"],
  ["/admins", "Admins"],
];

function pageFor(route) {
  const [top, id, sub, subId] = route.segments;
  const params = route.params;
  switch (top) {
    case "profile":
      return html`<${ProfilePage} params=${params} />`;
    case "api-keys":
      return id ? html`<${ApiKeyPage} id=${id} />` : html`<${ApiKeysPage} route=${route} />`;
    case "datasets":
      return id ? html`<${DatasetPage} name=${id} />` : html`<${DatasetsPage} route=${route} />`;
    case "dataset-groups":
      return id ? html`<${DatasetGroupPage} id=${id} />` : html`<${DatasetGroupsPage} />`;
    case "directory":
      if (id === "users" && sub) return html`<${DirectoryUserPage} id=${sub} />`;
      if (id === "groups" && sub) return html`<${DirectoryGroupPage} id=${sub} route=${route} />`;
      return html`<${DirectoryPage} route=${route} />`;
    case "provisioning":
      return html`<${ProvisioningPage} route=${route} />`;
    case "usage":
      return html`<${UsagePage} route=${route} />`;
    case "audit":
      return html`<${AuditPage} route=${route} />`;
    case "admins":
      return html`<${AdminsPage} />`;
    default:
      void subId;
      return html`<h1>Not found</h1><p>There is no page at this address. <a href="#/profile">Go to the account page</a>.</p>`;
  }
}

function Shell({ session, onSignOut }) {
  const route = useRoute();
  const [menuOpen, setMenuOpen] = useState(false);
  const top = "/" + (route.segments[0] || "profile");
  useEffect(() => setMenuOpen(false), [route.path]);
  useEffect(() => {
    if (!menuOpen) return undefined;
    const escape = (event) => {
      if (event.key === "Escape") {
        setMenuOpen(false);
        document.querySelector(".menu-toggle")?.focus();
      }
    };
    document.addEventListener("keydown", escape);
    return () => document.removeEventListener("keydown", escape);
  }, [menuOpen]);
  const viewer = session.admin.role !== "admin";
  return html`<div class="shell">
    <a class="skip-link" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header class="topbar">
      <button type="button" class="menu-toggle" aria-expanded=${menuOpen} aria-controls="side-nav"
        onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <a class="brand" href="#/profile">Keystead</a>
      <span class="account">${session.account.name}</span>
      <span class="spacer"></span>
      <span class="who">${session.admin.email}${viewer ? " (viewer: read-only)" : ""}</span>
      <button type="button" onClick=${onSignOut}>Sign out</button>
    </header>
    <nav id="side-nav" class=${`side ${menuOpen ? "" : "closed"}`} aria-label="Console">
      <ul>
        ${NAV.map(([path, label]) => html`<li>
          <a href=${href(path)} aria-current=${top === path ? "page" : undefined}
            onClick=${() => setMenuOpen(false)}>${label}</a>
        </li>`)}
      </ul>
    </nav>
    <main id="main" tabindex="-1">${pageFor(route)}</main>
  </div>`;
}

function App() {
  // phase: loading | signin | password | ready
  const [state, setState] = useState({ phase: "loading" });

  async function load(extra = {}) {
    try {
      const session = await api.get("/session", null, { expectSession: false });
      setCsrfToken(session.csrf_token);
      setState({ phase: session.admin.password_change_required ? "password" : "ready", session, ...extra });
    } catch (error) {
      if (error.status === 401) setState({ phase: "signin" });
      else setState({ phase: "error", error });
    }
  }

  useEffect(() => {
    load();
    return onUnauthenticated((error) =>
      // The page stays where it was (its hash); signing in again returns to it.
      setState({
        phase: "signin",
        notice: /expired/.test(error.message)
          ? "Your session has expired. Sign in again to go on where you were."
          : "You are signed out (the session ended). Sign in again to go on where you were.",
      }),
    );
  }, []);

  async function signOut() {
    try {
      await api.delete("/session", { expectSession: false });
    } catch {
      // Already signed out: nothing to end.
    }
    setCsrfToken("");
    setState({ phase: "signin", notice: "You are signed out." });
  }

  const session = state.session;
  switch (state.phase) {
    case "loading":
      return html`<main id="main"><${Loading} what="Loading the console" /></main>`;
    case "error":
      return html`<main id="main" class="boot"><${Alert} kind="error">
        <p>The console cannot start: ${state.error.message}</p><//></main>`;
    case "signin":
      return html`<${SignIn} notice=${state.notice}
        onSignedIn=${(signedIn, password) =>
          setState({
            phase: signedIn.admin.password_change_required ? "password" : "ready",
            session: signedIn,
            oneTimePassword: password,
          })} />`;
    case "password":
      return html`<${ChoosePassword} session=${session} oneTimePassword=${state.oneTimePassword}
        onChanged=${() => load()} onSignOut=${signOut} />`;
    default: {
      const context = { ...session, canWrite: session.admin.role === "admin", reload: () => load() };
      return html`<${SessionContext.Provider} value=${context}>
        <${Shell} session=${session} onSignOut=${signOut} />
      <//>`;
    }
  }
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading…" shown before the modules ran
render(html`<${App} />`, root);
