// The dashboard's shell: navigation, hash routing, polling, sign-in, theme.
//
// Pages are modules exporting `mount(ctx)`; ctx gives them their element, the route, a
// poller that stops when the page is left and while the tab is hidden, and shared caches.

import { h, s, replace, errorBox } from './dom.js';
import { api, credential, onUnauthorized, ApiError } from './api.js';
import { parseRoute, href, section, PAGES } from './route.js';
import * as overview from './page-overview.js';
import * as servers from './page-servers.js';
import * as tools from './page-tools.js';
import * as requests from './page-requests.js';
import * as metrics from './page-metrics.js';

const ROUTES = {
  overview: [overview.mount, 'Overview'],
  servers: [servers.mountList, 'Servers'],
  server: [servers.mountDetail, 'Server'],
  tools: [tools.mountList, 'Tools'],
  tool: [tools.mountDetail, 'Tool'],
  requests: [requests.mountList, 'Requests'],
  request: [requests.mountDetail, 'Request'],
  metrics: [metrics.mount, 'Metrics'],
};

const ICONS = {
  overview: 'M3 13h6V3H3zm0 8h6v-6H3zm8 0h10V11H11zm0-18v6h10V3z',
  servers: 'M4 4h16v6H4zm0 10h16v6H4zm3-7h2m-2 10h2',
  tools: 'M14.7 6.3a4 4 0 0 0-5.4 5.4L3 18l3 3 6.3-6.3a4 4 0 0 0 5.4-5.4l-2.5 2.5-2.4-.6-.6-2.4z',
  requests: 'M4 6h16M4 12h16M4 18h10',
  metrics: 'M3 20h18M6 16l4-6 4 3 5-8',
};

const NAV_LABELS = { overview: 'Overview', servers: 'Servers', tools: 'Tools', requests: 'Requests', metrics: 'Metrics' };

function icon(name) {
  return s('svg', { class: 'icon', viewBox: '0 0 24 24', 'aria-hidden': 'true' }, s('path', { d: ICONS[name] }));
}

// ---- theme ------------------------------------------------------------------------------

const THEME_KEY = 'mcp-gateway.theme';
const THEMES = ['auto', 'light', 'dark'];

function theme() {
  const t = localStorage.getItem(THEME_KEY);
  return THEMES.includes(t) ? t : 'auto';
}

function applyTheme(btn) {
  const t = theme();
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  if (btn) {
    btn.textContent = { auto: '◐ Auto', light: '☀ Light', dark: '☾ Dark' }[t];
    btn.title = `Theme: ${t} (click to change)`;
  }
}

// ---- polling ----------------------------------------------------------------------------

const POLL_MIN_MS = 1000;

/**
 * Runs `fn` now and then every `ms` (never more than once a second) until `stop()`, not
 * while the tab is hidden (it resumes at once when shown). `fn` may return a delay in ms to
 * wait longer once (a Retry-After); a throwing `fn` is retried after the interval.
 */
function poller(fn, ms, { now = true } = {}) {
  let timer = null;
  let running = false;
  let stopped = false;
  const interval = Math.max(POLL_MIN_MS, ms);
  const tick = async () => {
    timer = null;
    if (stopped || document.hidden || running) return;
    running = true;
    let wait = interval;
    try {
      const r = await fn();
      if (typeof r === 'number') wait = Math.max(interval, r);
    } catch (e) {
      if (e instanceof ApiError && e.retryAfter) wait = Math.max(interval, e.retryAfter * 1000);
    }
    running = false;
    if (!stopped && !document.hidden) timer = setTimeout(tick, wait);
  };
  const onVis = () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (!timer && !running && !stopped) tick();
  };
  document.addEventListener('visibilitychange', onVis);
  if (now) tick();
  else timer = setTimeout(tick, interval);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVis);
    },
    now() {
      if (!running && !stopped) {
        clearTimeout(timer);
        tick();
      }
    },
  };
}

// ---- the shell --------------------------------------------------------------------------

const state = {
  current: null, // { stops: [], alive }
  needAuth: false,
  health: null,
  cache: new Map(),
};

const els = {};

function buildShell() {
  const themeBtn = h('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'theme-toggle' });
  themeBtn.addEventListener('click', () => {
    const next = THEMES[(THEMES.indexOf(theme()) + 1) % THEMES.length];
    if (next === 'auto') localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, next);
    applyTheme(themeBtn);
  });
  applyTheme(themeBtn);
  const signOut = h('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'sign-out', hidden: true }, 'Sign out');
  signOut.addEventListener('click', () => {
    credential.clear();
    // A fresh page: nothing the previous credential fetched stays in memory.
    location.reload();
  });
  const status = h('span', { class: 'top-status', id: 'top-status' });
  const nav = h(
    'nav',
    { class: 'sidenav', 'aria-label': 'Pages' },
    PAGES.map((p) => h('a', { href: href(p), class: 'nav-link', dataset: { page: p } }, icon(p), h('span', null, NAV_LABELS[p]))),
  );
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const brand = h(
    'a',
    { href: '#/overview', class: 'brand' },
    s('svg', { class: 'logo', viewBox: '0 0 32 32', 'aria-hidden': 'true' },
      s('rect', { x: 2, y: 2, width: 28, height: 28, rx: 7 }),
      s('path', { d: 'M9 11h14M9 16h14M9 21h14', class: 'logo-lines' }),
      s('circle', { cx: 9, cy: 11, r: 2.2 }), s('circle', { cx: 23, cy: 16, r: 2.2 }), s('circle', { cx: 9, cy: 21, r: 2.2 })),
    h('span', null, 'mcp-gateway'),
  );
  const top = h('header', { class: 'topbar' }, brand, status, h('span', { class: 'spacer' }), themeBtn, signOut);
  replace(document.body, top, h('div', { class: 'layout' }, nav, main));
  Object.assign(els, { main, nav, status, signOut });
}

function setStatus(health) {
  state.health = health;
  if (!health) {
    replace(els.status);
    return;
  }
  const sv = health.servers || {};
  replace(
    els.status,
    h('span', { class: ['dot', `dot-${health.status}`], title: `gateway ${health.status}` }),
    h('span', { class: 'top-status-text' }, `${health.status} · ${sv.healthy ?? '?'}/${sv.enabled ?? '?'} servers · v${health.version ?? '?'}`),
  );
}

function stopPage() {
  if (!state.current) return;
  state.current.alive = false;
  for (const stop of state.current.stops) {
    try {
      stop();
    } catch {
      /* a page's cleanup failing must not block navigation */
    }
  }
  state.current = null;
}

function route() {
  stopPage();
  const r = parseRoute(location.hash);
  const sec = section(r.page);
  for (const a of els.nav.querySelectorAll('a')) {
    if (a.dataset.page === sec) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  els.signOut.hidden = !credential.get();
  if (state.needAuth) {
    showLogin();
    return;
  }
  const cur = { stops: [], alive: true };
  state.current = cur;
  const el = h('div', { class: 'page', dataset: { page: r.page } });
  replace(els.main, el);
  if (r.page === 'notfound') {
    document.title = 'Not found · mcp-gateway';
    el.append(h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, 'No such page'), h('p', null, 'Go to the ', h('a', { href: '#/overview' }, 'overview'), '.')));
    return;
  }
  const [mount, title] = ROUTES[r.page];
  document.title = `${title} · mcp-gateway`;
  const ctx = {
    el,
    params: r.params,
    query: r.query,
    cache: state.cache,
    get alive() {
      return cur.alive;
    },
    poll(fn, ms) {
      const p = poller(fn, ms);
      cur.stops.push(() => p.stop());
      return p;
    },
    onLeave(fn) {
      cur.stops.push(fn);
    },
    setTitle(t) {
      document.title = `${t} · mcp-gateway`;
    },
    /** Rewrites the route's query without navigating (filters kept in the address). */
    setQuery(query) {
      const url = href(r.page, r.params, query);
      history.replaceState(null, '', url);
    },
    setHealth: setStatus,
  };
  try {
    const cleanup = mount(ctx);
    if (typeof cleanup === 'function') cur.stops.push(cleanup);
  } catch (e) {
    el.append(errorBox(e, 'show this page'));
  }
}

// ---- sign-in ----------------------------------------------------------------------------

function showLogin(message = '') {
  stopPage();
  setStatus(null);
  document.title = 'Sign in · mcp-gateway';
  for (const a of els.nav.querySelectorAll('a')) a.removeAttribute('aria-current');
  els.signOut.hidden = true;
  let kind = 'key';
  const input = h('input', { id: 'login-secret', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'API key' });
  const note = h('p', { class: 'login-message', role: 'alert', hidden: !message }, message);
  const kinds = h(
    'div',
    { class: 'segmented', role: 'radiogroup', 'aria-label': 'Credential type' },
    [['key', 'API key'], ['bearer', 'Bearer token']].map(([k, label]) => {
      const b = h('button', { type: 'button', role: 'radio', 'aria-checked': String(k === kind), class: 'seg', dataset: { kind: k } }, label);
      b.addEventListener('click', () => {
        kind = k;
        for (const x of kinds.children) x.setAttribute('aria-checked', String(x.dataset.kind === k));
        input.placeholder = k === 'key' ? 'API key' : 'JWT or OAuth access token';
        input.focus();
      });
      return b;
    }),
  );
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'login-submit' }, 'Sign in');
  const form = h(
    'form',
    { class: 'login card', id: 'login-form', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to mcp-gateway'),
    h('p', { class: 'muted' }, 'This gateway requires a credential (auth.strategy in its config). Enter an API key from auth.apiKeys, or a bearer token. It is kept for this browser tab only (sessionStorage) and sent with every API call.'),
    kinds,
    h('label', { for: 'login-secret', class: 'field-name' }, 'Credential'),
    input,
    note,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    submit.disabled = true;
    note.hidden = true;
    try {
      const health = await api('/api/v1/health', { cred: { kind, value } });
      credential.set(kind, value);
      state.needAuth = false;
      setStatus(health);
      route();
    } catch (e) {
      note.hidden = false;
      if (e instanceof ApiError && e.status === 401) note.textContent = 'The gateway refused this credential. Check it and try again.';
      else if (e instanceof ApiError && e.status === 429) note.textContent = `Too many failed attempts from this address; wait ${e.retryAfter ?? 60} seconds.`;
      else note.textContent = e?.message ?? String(e);
      submit.disabled = false;
      input.select();
    }
  });
  replace(els.main, h('div', { class: 'page page-login' }, form));
  input.focus();
}

onUnauthorized(() => {
  if (state.needAuth) return;
  const had = Boolean(credential.get());
  credential.clear();
  state.cache.clear();
  state.needAuth = true;
  showLogin(had ? 'Your credential was refused (revoked, or the token expired). Sign in again.' : '');
});

// ---- start ------------------------------------------------------------------------------

async function start() {
  buildShell();
  window.addEventListener('hashchange', () => {
    if (!state.needAuth) route();
  });
  // The gateway's state in the top bar, every 10 s.
  poller(async () => {
    if (state.needAuth) return;
    try {
      setStatus(await api('/api/v1/health'));
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) setStatus(null);
      throw e;
    }
  }, 10_000, { now: false });
  try {
    setStatus(await api('/api/v1/health'));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // the sign-in prompt is shown
  }
  if (!location.hash) history.replaceState(null, '', '#/overview');
  route();
}

start();
