// Requests: the request log, filtered by server, tool, caller, status and time, following new
// calls live (polling once a second); a call's detail with timings, identity, trace id,
// error, captured bodies, and replay with edited arguments and the diff of the results.

import { h, replace, pill, empty, errorBox, card, facts, pre, copyButton, select } from './dom.js';
import { api, qs, ApiError, endpointMissing } from './api.js';
import { href } from './route.js';
import * as fmt from './format.js';
import { requestFilter, serverSideParams, LogStore } from './search.js';
import { virtualList } from './virtual-list.js';
import { renderResult, renderCallError } from './result-view.js';

/** What this gateway's API offers beyond the basic log (learnt on first use, per page load). */
const features = { after: undefined, detail: undefined };

const FIRST_PAGE = 10000;
const TIMES = [['', 'Any time'], ['300', 'Last 5 min'], ['900', 'Last 15 min'], ['3600', 'Last hour'], ['86400', 'Last 24 h']];

export function mountList(ctx) {
  const { el, query } = ctx;
  const f = {
    server: query.server ?? '',
    tool: query.tool ?? '',
    status: query.status ?? '',
    caller: query.caller ?? '',
    since: query.since ?? '',
  };
  let follow = query.follow !== 'off';

  const serverSel = select([['', 'All servers']], f.server, { id: 'req-server', 'aria-label': 'Server' });
  if (f.server) serverSel.append(h('option', { value: f.server }, f.server));
  serverSel.value = f.server;
  const toolIn = h('input', { type: 'search', id: 'req-tool', placeholder: 'Tool', value: f.tool, 'aria-label': 'Tool', list: 'req-tools' });
  const toolList = h('datalist', { id: 'req-tools' });
  const statusSel = select(
    [['', 'Any status'], ['ok', 'ok'], ['error', 'errors (all)'], ...fmt.OUTCOMES.filter((o) => o !== 'ok').map((o) => [o, o.replace(/_/g, ' ')])],
    f.status,
    { id: 'req-status', 'aria-label': 'Status' },
  );
  const callerIn = h('input', { type: 'search', id: 'req-caller', placeholder: 'Caller', value: f.caller, 'aria-label': 'Caller' });
  const sinceSel = select(TIMES, f.since, { id: 'req-since', 'aria-label': 'Time' });
  const followBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'req-follow', 'aria-pressed': String(follow) });
  const count = h('span', { class: 'muted small', id: 'req-count' });
  const note = h('p', { class: 'muted small', hidden: true });
  const body = h('div', { class: 'list-host' });
  const header = h('div', { class: 'vrow req-row req-header', 'aria-hidden': 'true' }, ['Time', 'Outcome', 'Server', 'Tool / method', 'Caller', 'Duration', 'Error'].map((t) => h('span', null, t)));
  el.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Requests'), count, h('span', { class: 'grow' }), followBtn),
    h('div', { class: 'toolbar' }, serverSel, toolIn, toolList, statusSel, callerIn, sinceSel),
    note,
    body,
  );

  const store = new LogStore(Math.max(FIRST_PAGE * 2, 20000));
  let rows = []; // matching entries, oldest first
  let match = requestFilter(f);
  let loaded = false;
  let enabled = true;
  let gen = 0;

  const list = virtualList({
    count: () => rows.length,
    label: 'Requests',
    cls: 'req-list',
    renderRow: (i) => {
      const e = rows[rows.length - 1 - i];
      return h(
        'a',
        { class: ['vrow', 'req-row', fmt.isError(e.outcome) && 'is-error'], href: href('request', { id: String(e.id) }), role: 'listitem', dataset: { id: String(e.id) } },
        h('span', { class: 'mono', title: fmt.datetime(e.time) }, fmt.clock(e.time, true)),
        h('span', null, pill(e.outcome), e.status && e.status !== 200 ? h('span', { class: 'muted small' }, ` ${e.status}`) : null),
        h('span', { class: 'ellipsis' }, e.server),
        h('span', { class: 'ellipsis strong' }, e.tool ?? e.method, e.replayOf ? h('span', { class: 'tag' }, 'replay') : null),
        h('span', { class: 'ellipsis muted' }, e.identity ?? '–'),
        h('span', { class: 'mono num' }, fmt.duration(e.durationMs ?? e.timings?.totalMs)),
        h('span', { class: 'ellipsis muted small err-text' }, e.error ?? ''),
      );
    },
  });
  ctx.onLeave(() => list.destroy());
  const listBox = h('div', { class: 'card table-card' }, header, list.el);

  const drawCount = () => {
    count.textContent = `${fmt.count(rows.length)} ${rows.length === 1 ? 'call' : 'calls'}${rows.length !== store.length ? ` (of ${fmt.count(store.length)} loaded)` : ''}`;
  };
  const draw = () => {
    drawCount();
    if (!loaded) return;
    if (!enabled) {
      replace(body, empty('The request log is off', 'Set monitor.requestLog: true in the gateway config to keep recent calls.'));
      return;
    }
    if (!rows.length) {
      const filtered = Object.values(f).some(Boolean);
      replace(
        body,
        filtered
          ? empty('No calls match', 'Loosen the filters; new calls that match appear here as they happen.')
          : empty('No calls yet', 'Calls through /mcp and the REST API appear here as they happen. Try one from the ', h('a', { href: '#/tools' }, 'Tools'), ' page.'),
      );
      return;
    }
    if (listBox.parentNode !== body) replace(body, listBox);
    list.refresh();
  };
  const drawFollow = () => {
    followBtn.textContent = follow ? '● Following live' : '❚❚ Paused';
    followBtn.setAttribute('aria-pressed', String(follow));
    followBtn.classList.toggle('live', follow);
  };
  drawFollow();

  async function reload() {
    const my = ++gen;
    store.clear();
    rows = [];
    loaded = false;
    replace(body, h('p', { class: 'muted' }, 'Loading…'));
    const v = await api(`/api/v1/requests${qs({ ...serverSideParams(f), limit: FIRST_PAGE })}`);
    if (my !== gen || !ctx.alive) return;
    enabled = v.enabled !== false;
    store.add(v.requests || []);
    rows = store.all().filter(match);
    loaded = true;
    draw();
  }

  async function poll() {
    if (!loaded) return reload();
    const my = gen;
    const ssp = serverSideParams(f);
    let v;
    if (features.after !== false) {
      try {
        v = await api(`/api/v1/requests${qs({ ...ssp, after: store.maxId, limit: FIRST_PAGE })}`);
        features.after = true;
      } catch (e) {
        if (!endpointMissing(e)) throw e;
        features.after = false;
      }
    }
    // Without `after`: the newest page, merged by id.
    if (!v) v = await api(`/api/v1/requests${qs({ ...ssp, limit: 500 })}`);
    if (my !== gen || !ctx.alive) return;
    const fresh = store.add(v.requests || []).filter(match);
    if (!fresh.length) {
      drawCount();
      return;
    }
    // Keep what the reader looks at in place unless they are at the top (following).
    const atTop = list.el.scrollTop < list.rowHeight() / 2;
    if (fresh[0].id > (rows[rows.length - 1]?.id ?? 0)) rows.push(...fresh);
    else rows = store.all().filter(match);
    if (rows.length > store.capacity) rows = rows.slice(-store.capacity);
    draw();
    if (!atTop) list.el.scrollTop += fresh.length * list.rowHeight();
  }

  let poller = null;
  const startPolling = () => {
    poller?.stop();
    poller = follow
      ? ctx.poll(async () => {
          try {
            await poll();
          } catch (e) {
            if (ctx.alive && !(e instanceof ApiError && e.status === 401)) replace(body, errorBox(e, 'read the request log'));
            throw e;
          }
        }, 1000)
      : null;
  };
  ctx.onLeave(() => poller?.stop());

  const apply = (refetch) => {
    Object.assign(f, { server: serverSel.value, tool: toolIn.value.trim(), status: statusSel.value, caller: callerIn.value.trim(), since: sinceSel.value });
    ctx.setQuery({ ...f, follow: follow ? '' : 'off' });
    match = requestFilter(f);
    if (refetch) {
      reload().catch((e) => ctx.alive && replace(body, errorBox(e, 'read the request log')));
    } else {
      rows = store.all().filter(match);
      list.scrollToTop();
      draw();
    }
  };
  let typing = 0;
  serverSel.addEventListener('change', () => apply(true));
  statusSel.addEventListener('change', () => apply(true));
  sinceSel.addEventListener('change', () => apply(true));
  toolIn.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => apply(true), 350);
  });
  callerIn.addEventListener('input', () => apply(false));
  followBtn.addEventListener('click', () => {
    follow = !follow;
    drawFollow();
    ctx.setQuery({ ...f, follow: follow ? '' : 'off' });
    startPolling();
  });
  ctx.onLeave(() => clearTimeout(typing));

  // Filter choices: the servers and the tools the caller may use.
  Promise.allSettled([api('/api/v1/servers'), api('/api/v1/tools')]).then(([sv, tv]) => {
    if (!ctx.alive) return;
    if (sv.status === 'fulfilled') {
      const ids = (sv.value.servers || []).map((x) => x.id);
      replace(serverSel, h('option', { value: '' }, 'All servers'), ['-', ...ids].map((id) => h('option', { value: id }, id === '-' ? '(no server)' : id)));
      serverSel.value = f.server;
    }
    if (tv.status === 'fulfilled') {
      const names = [...new Set((tv.value.tools || []).flatMap((t) => [t.name, t.qualifiedName]).filter(Boolean))].sort();
      replace(toolList, names.slice(0, 2000).map((n) => h('option', { value: n })));
    }
  });

  if (follow) startPolling();
  else reload().catch((e) => ctx.alive && replace(body, errorBox(e, 'read the request log')));
}

// ---- one request --------------------------------------------------------------------------

const CAPTURE_NOTE = {
  truncated: 'Cut at monitor.maxBodyBytes.',
  redacted: 'Values under secret-looking keys were replaced by "[REDACTED]".',
  none: 'Not captured: set monitor.captureBodies to errors or all to keep bodies.',
};

function bodyBlock(label, value, capture) {
  const mark = capture && capture !== 'full' ? h('span', { class: 'tag' }, capture) : null;
  const content =
    value === undefined
      ? h('p', { class: 'muted small' }, capture && CAPTURE_NOTE[capture] ? CAPTURE_NOTE[capture] : 'Not captured. Bodies are kept only when the gateway is set to capture them (monitor.captureBodies or monitor.logBodies).')
      : h('div', null, pre(fmt.json(value)), capture && CAPTURE_NOTE[capture] ? h('p', { class: 'muted small' }, CAPTURE_NOTE[capture]) : null);
  return card(h('span', null, label, ' ', mark), content, { actions: value !== undefined ? copyButton(() => fmt.json(value)) : null });
}

function timingBars(t) {
  const total = t?.totalMs;
  if (typeof total !== 'number') return null;
  if (typeof t.queuedMs !== 'number' && typeof t.upstreamMs !== 'number') {
    return h('div', { class: 'timings' }, h('p', { class: 'strong' }, `total ${fmt.duration(total)}`), h('p', { class: 'muted small' }, 'This gateway version records only the total time of a call.'));
  }
  const queued = Math.max(0, t.queuedMs ?? 0);
  const upstream = Math.max(0, t.upstreamMs ?? 0);
  const gateway = Math.max(0, total - queued - upstream);
  const seg = (cls, ms, label) => {
    const el = h('span', { class: ['tseg', cls], title: `${label}: ${fmt.duration(ms)}` });
    el.style.width = `${total > 0 ? Math.max(ms > 0 ? 1 : 0, (ms / total) * 100) : 0}%`;
    return el;
  };
  return h(
    'div',
    { class: 'timings' },
    h('div', { class: 'tbar' }, seg('t-queued', queued, 'queued'), seg('t-upstream', upstream, 'in the server'), seg('t-gateway', gateway, 'in the gateway')),
    h(
      'div',
      { class: 'tlegend small' },
      h('span', null, h('i', { class: 'swatch t-queued' }), `queued ${fmt.duration(queued)}`),
      h('span', null, h('i', { class: 'swatch t-upstream' }), `in the server ${fmt.duration(upstream)}`),
      h('span', null, h('i', { class: 'swatch t-gateway' }), `in the gateway ${fmt.duration(gateway)}`),
      h('span', { class: 'strong' }, `total ${fmt.duration(total)}`),
    ),
  );
}

export function mountDetail(ctx) {
  const { el, params } = ctx;
  const id = params.id;
  ctx.setTitle(`Request ${id}`);
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  el.append(h('p', { class: 'crumbs' }, h('a', { href: '#/requests' }, 'Requests'), ' / ', `#${id}`), body);

  (async () => {
    let r = null;
    let full = false;
    if (features.detail !== false) {
      try {
        const v = await api(`/api/v1/requests/${encodeURIComponent(id)}`);
        r = v?.request ?? v;
        features.detail = true;
        full = true;
      } catch (e) {
        if (!ctx.alive) return;
        if (endpointMissing(e)) features.detail = false;
        else if (e instanceof ApiError && e.status === 404) {
          replace(body, empty(`No request #${id}`, 'It is not in the log any more (the log keeps the latest monitor.requestLogSize calls, for monitor.retentionHours), or it is another caller\'s. ', h('a', { href: '#/requests' }, 'Back to the log'), '.'));
          return;
        } else if (!(e instanceof ApiError && e.status === 401)) {
          replace(body, errorBox(e, `read request #${id}`));
          return;
        } else return;
      }
    }
    if (!r) {
      // An older API: the entry as the list shows it.
      try {
        const v = await api(`/api/v1/requests${qs({ limit: FIRST_PAGE })}`);
        r = (v.requests || []).find((e) => String(e.id) === String(id)) ?? null;
      } catch (e) {
        if (ctx.alive) replace(body, errorBox(e, 'read the request log'));
        return;
      }
      if (!ctx.alive) return;
      if (!r) {
        replace(body, empty(`No request #${id}`, 'It is not in the log any more, or it is another caller\'s. ', h('a', { href: '#/requests' }, 'Back to the log'), '.'));
        return;
      }
    }
    if (!ctx.alive) return;
    replace(body, detailView(ctx, r, full));
  })();
}

function detailView(ctx, r, full) {
  const t = r.timings || (typeof r.durationMs === 'number' ? { totalMs: r.durationMs } : null);
  const tool = r.tool;
  const head = h(
    'div',
    { class: 'page-head' },
    h('h1', null, `${tool ?? r.method}`),
    pill(r.outcome),
    r.status ? h('span', { class: 'muted' }, `HTTP ${r.status}`) : null,
    r.replayOf ? h('a', { href: href('request', { id: String(r.replayOf) }), class: 'tag' }, `replay of #${r.replayOf}`) : null,
  );
  const serverLink = r.server && r.server !== '-' ? h('a', { href: href('server', { id: r.server }) }, r.server) : '– (no server)';
  const toolLink = tool && r.server && r.server !== '-' ? h('a', { href: href('tool', { server: r.server, tool: r.upstreamTool ?? tool }) }, tool) : tool;
  const info = card(
    'Call',
    facts([
      ['Id', `#${r.id}`],
      ['Time', fmt.datetime(r.time)],
      ['Method', r.method],
      ['Server', serverLink],
      ['Tool', toolLink],
      ['Upstream tool', r.upstreamTool && r.upstreamTool !== tool ? r.upstreamTool : null],
      ['Caller', r.identity ?? 'anonymous'],
      ['Transport', r.transport],
      ['Protocol', r.protocol],
      ['Request id', r.requestId],
      ['Trace id', r.traceId ? h('span', null, h('code', null, r.traceId), ' ', copyButton(() => r.traceId)) : null],
      ['Retries', r.retries !== undefined ? String(r.retries) : null],
    ]),
  );
  const timing = card('Timings', timingBars(t) ?? h('p', { class: 'muted' }, 'No timings recorded.'));
  const err = r.error ? h('div', { class: 'error-box', role: 'alert' }, h('p', { class: 'error-title' }, `Error (${r.outcome})`), h('p', null, r.error)) : null;
  const cap = r.capture || {};
  const shown = r.result !== null && typeof r.result === 'object' && Array.isArray(r.result.content);
  const resultBlock = shown
    ? card(h('span', null, 'Result ', cap.result && cap.result !== 'full' ? h('span', { class: 'tag' }, cap.result) : null), renderResult({ server: r.server, result: r.result }))
    : bodyBlock('Result', r.result, cap.result);
  const bodies = h('div', { class: 'grid grid-2' }, bodyBlock('Arguments', r.arguments, cap.arguments), resultBlock);
  const note = full ? null : h('p', { class: 'muted small notice' }, 'This gateway\'s API has no per-call endpoint (GET /api/v1/requests/{id}): shown is the log entry; replay is not available.');
  return h('div', null, head, note, err, h('div', { class: 'grid grid-2' }, info, timing), bodies, full ? replayCard(ctx, r) : null);
}

function diffView(diff, unavailable) {
  if (diff === null || diff === undefined) return h('p', { class: 'muted small' }, `No diff: ${unavailable || 'the original result was not captured.'}`);
  const added = diff.added || [];
  const removed = diff.removed || [];
  const changed = diff.changed || [];
  if (!added.length && !removed.length && !changed.length) return h('p', { class: 'diff-same' }, 'Same result as the original call.');
  const short = (v) => {
    const s = JSON.stringify(v);
    return s === undefined ? 'undefined' : s.length > 300 ? `${s.slice(0, 300)}…` : s;
  };
  return h(
    'div',
    { class: 'diff', id: 'replay-diff' },
    h('p', { class: 'small' }, `${changed.length} changed · ${added.length} added · ${removed.length} removed`),
    h(
      'ul',
      { class: 'diff-list' },
      changed.map((c) => h('li', { class: 'd-changed' }, h('code', null, c.path || '/'), h('div', { class: 'd-from' }, '− ', short(c.from)), h('div', { class: 'd-to' }, '+ ', short(c.to)))),
      added.map((p) => h('li', { class: 'd-added' }, '+ ', h('code', null, p))),
      removed.map((p) => h('li', { class: 'd-removed' }, '− ', h('code', null, p))),
    ),
  );
}

function replayCard(ctx, r) {
  const cap = r.capture || {};
  const usable = r.arguments !== undefined && cap.arguments !== 'redacted' && cap.arguments !== 'none' && cap.arguments !== 'truncated';
  const mode = { value: 'arguments' };
  const area = h('textarea', { class: 'mono json-editor', id: 'replay-args', rows: 8, spellcheck: 'false', 'aria-label': 'Replay arguments (JSON)' });
  const prefill = () => (r.arguments !== null && typeof r.arguments === 'object' ? fmt.json(r.arguments) : '{}');
  area.value = prefill();
  const why = usable
    ? 'Sent again through the whole gateway as you (your identity, access rules and rate limit apply).'
    : cap.arguments === 'redacted'
      ? 'Some values were redacted: replace each "[REDACTED]" before replaying (sent as you, under your access rules).'
      : `The original arguments were ${cap.arguments === 'truncated' ? 'cut' : 'not captured'}: enter the arguments to send.`;
  const seg = (m, label) =>
    h('button', {
      type: 'button',
      role: 'radio',
      class: 'seg',
      'aria-checked': String(mode.value === m),
      dataset: { mode: m },
      onclick: () => {
        mode.value = m;
        for (const b of modes.children) b.setAttribute('aria-checked', String(b.dataset.mode === m));
        area.value = m === 'patch' ? '{}' : prefill();
        help.textContent = m === 'patch' ? 'A JSON merge patch applied to the captured arguments ({"key": null} removes a key).' : why;
      },
    }, label);
  const modes = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Replay with' }, seg('arguments', 'Arguments'), usable ? seg('patch', 'Merge patch') : null);
  const help = h('p', { class: 'muted small' }, why);
  const out = h('div', { class: 'result-host', 'aria-live': 'polite', id: 'replay-result' });
  const btn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'replay' }, 'Replay');
  const form = h('form', { class: 'replay-form', novalidate: true }, modes, help, area, h('div', { class: 'actions' }, btn), out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let v;
    try {
      v = JSON.parse(area.value || '{}');
    } catch (e) {
      replace(out, h('p', { class: 'field-error' }, `Not valid JSON: ${e.message}`));
      return;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      replace(out, h('p', { class: 'field-error' }, 'Enter a JSON object ({ … }).'));
      return;
    }
    btn.disabled = true;
    btn.textContent = 'Replaying…';
    try {
      const a = await api(`/api/v1/requests/${encodeURIComponent(r.id)}/replay`, { method: 'POST', body: { [mode.value]: v } });
      if (!ctx.alive) return;
      replace(
        out,
        h('p', { class: 'small' }, 'New call ', h('a', { href: href('request', { id: String(a.id) }) }, `#${a.id}`), ` (replay of #${a.replayOf ?? r.id}).`),
        a.result !== undefined ? renderResult({ server: r.server, result: a.result }) : null,
        card('Difference from the original result', diffView(a.diff, a.diffUnavailable), { cls: 'diff-card' }),
      );
    } catch (e) {
      if (!ctx.alive || (e instanceof ApiError && e.status === 401)) return;
      if (endpointMissing(e)) {
        replace(out, h('p', { class: 'muted' }, 'This gateway cannot replay calls (no POST /api/v1/requests/{id}/replay).'));
      } else if (e instanceof ApiError && e.status === 409) {
        replace(out, h('div', { class: 'error-box' }, h('p', { class: 'error-title' }, 'Cannot replay as is'), h('p', null, e.message), h('p', { class: 'muted small' }, 'Enter the arguments to send and replay again.')));
      } else if (e instanceof ApiError && e.status === 403) {
        replace(out, h('div', { class: 'error-box' }, h('p', { class: 'error-title' }, 'Not allowed'), h('p', null, e.message), h('p', { class: 'muted small' }, 'Replaying another caller\'s call needs an admin role (auth.adminRoles).')));
      } else replace(out, renderCallError(e));
    } finally {
      btn.disabled = false;
      btn.textContent = 'Replay';
    }
  });
  return card('Replay', form, { cls: 'replay-card' });
}
