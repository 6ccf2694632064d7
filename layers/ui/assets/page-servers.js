// Servers: every configured server with its transport, protocol, state and health; a
// server's page with its tools (and prompts and resources when the API lists them), its
// recent calls and its traffic.

import { h, replace, pill, empty, errorBox, card, facts, pre } from './dom.js';
import { api, qs, ApiError } from './api.js';
import { href } from './route.js';
import * as fmt from './format.js';
import { windowSeries } from './series.js';
import { timeChart } from './charts.js';

function cell(label, ...content) {
  return h('td', { 'data-label': label }, ...content);
}

export function mountList(ctx) {
  const { el } = ctx;
  const filter = h('input', { type: 'search', placeholder: 'Filter by id, name, transport, status, tag…', class: 'search', 'aria-label': 'Filter servers', value: ctx.query.q ?? '' });
  const count = h('span', { class: 'muted small' });
  const body = h('div');
  el.append(h('div', { class: 'page-head' }, h('h1', null, 'Servers'), count), h('div', { class: 'toolbar' }, filter), body);
  let last = null;

  const draw = () => {
    if (!last) return;
    const list = last.servers || [];
    const q = filter.value.trim().toLowerCase();
    const shown = q
      ? list.filter((x) => [x.id, x.name, x.transport, x.status, x.protocolVersion, ...(x.tags || [])].some((v) => String(v ?? '').toLowerCase().includes(q)))
      : list;
    count.textContent = q ? `${shown.length} of ${list.length}` : `${list.length} configured`;
    if (!list.length) {
      replace(body, empty('No servers configured', 'Add one under servers: in mcp-gateway.yml (see docs/configuration.md), then restart the gateway.'));
      return;
    }
    if (!shown.length) {
      replace(body, empty('No server matches', 'Clear the filter to see all servers.'));
      return;
    }
    const now = Date.now();
    replace(
      body,
      h(
        'div',
        { class: 'card table-card' },
        h(
          'table',
          { class: 'table responsive', id: 'servers-table' },
          h('thead', null, h('tr', null, ['Server', 'Status', 'Transport', 'Protocol', 'Tools', 'Restarts', 'Last check', 'Last error'].map((t) => h('th', null, t)))),
          h(
            'tbody',
            null,
            shown.map((x) =>
              h(
                'tr',
                { dataset: { server: x.id, status: x.status } },
                cell('Server', h('a', { href: href('server', { id: x.id }), class: 'strong' }, x.name || x.id), x.name && x.name !== x.id ? h('div', { class: 'muted small' }, x.id) : null, (x.tags || []).length ? h('div', { class: 'tags' }, x.tags.map((t) => h('span', { class: 'tag' }, t))) : null),
                cell('Status', pill(x.enabled === false ? 'disabled' : x.status), x.health && x.health.state !== x.status ? h('div', { class: 'muted small' }, `health: ${x.health.state}`) : null),
                cell('Transport', x.transport),
                cell('Protocol', x.protocolVersion ?? '–'),
                cell('Tools', String(x.toolCount ?? 0)),
                cell('Restarts', String(x.restarts ?? 0)),
                cell('Last check', x.lastCheck ? h('span', { title: fmt.datetime(x.lastCheck) }, fmt.ago(x.lastCheck, now)) : '–'),
                cell('Last error', x.error ? h('span', { class: 'err-text' }, x.error) : h('span', { class: 'muted' }, '–')),
              ),
            ),
          ),
        ),
      ),
    );
  };
  filter.addEventListener('input', () => {
    ctx.setQuery({ q: filter.value });
    draw();
  });
  ctx.poll(async () => {
    try {
      last = await api('/api/v1/servers');
    } catch (e) {
      if (ctx.alive) replace(body, errorBox(e, 'list the servers'));
      throw e;
    }
    if (ctx.alive) draw();
  }, 3000);
}

function listing(items, render, none) {
  if (!items.length) return empty(none);
  return h('ul', { class: 'mini-list' }, items.map(render));
}

export function mountDetail(ctx) {
  const { el } = ctx;
  const id = ctx.params.id;
  ctx.setTitle(id);
  const title = h('h1', null, id);
  const status = h('span');
  const top = h('div');
  const toolsBox = h('div');
  const promptsBox = h('div');
  const callsBox = h('div');
  const chartBody = h('div');
  const chartCard = card('Calls per minute (last hour)', chartBody, { cls: 'chart-card' });
  const chart = timeChart(chartBody, {
    series: [
      { key: 'calls', label: 'calls', cls: 's-calls', area: true },
      { key: 'errors', label: 'errors', cls: 's-errors' },
    ],
    yFormat: (v) => fmt.count(v),
  });
  el.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/servers' }, 'Servers'), ' / ', id),
    h('div', { class: 'page-head' }, title, status),
    top,
    h('div', { class: 'grid grid-2' }, card('Tools', toolsBox), h('div', null, chartCard, card('Recent calls', callsBox, { actions: h('a', { href: href('requests', {}, { server: id }), class: 'small' }, 'All calls →') }))),
    promptsBox,
  );
  let toolsDrawn = '';
  // Prompts and resources are asked of the server itself: on the first poll and every
  // 30th after it, not every second.
  let polls = 0;

  ctx.poll(async () => {
    let v;
    const withItems = polls++ % 30 === 0;
    try {
      v = await api(`/api/v1/servers/${encodeURIComponent(id)}${withItems ? '?items=1' : ''}`);
    } catch (e) {
      if (!ctx.alive) return;
      if (e instanceof ApiError && e.status === 404) {
        replace(top, empty('No such server', `The gateway has no server "${id}". `, h('a', { href: '#/servers' }, 'See all servers'), '.'));
        return;
      }
      replace(top, errorBox(e, 'read this server'));
      throw e;
    }
    if (!ctx.alive) return;
    title.textContent = v.name || v.id;
    replace(status, pill(v.enabled === false ? 'disabled' : v.status));
    const now = Date.now();
    const hs = v.health || {};
    replace(
      top,
      h(
        'div',
        { class: 'grid grid-2' },
        card(
          'Server',
          facts([
            ['Id', v.id],
            ['Transport', v.transport],
            ['Protocol', v.protocolVersion],
            ['Implementation', v.serverInfo ? `${v.serverInfo.title || v.serverInfo.name || ''} ${v.serverInfo.version ? `v${v.serverInfo.version}` : ''}`.trim() : null],
            ['Tags', (v.tags || []).length ? h('span', { class: 'tags' }, v.tags.map((t) => h('span', { class: 'tag' }, t))) : null],
            ['Enabled', v.enabled === false ? 'no' : 'yes'],
            ['Tools', String(v.toolCount ?? 0)],
          ]),
        ),
        card(
          'Health',
          h(
            'div',
            null,
            facts([
              ['State', hs.state ? pill(hs.state) : v.status],
              ['Restarts', String(v.restarts ?? 0)],
              ['Last check', v.lastCheck ? `${fmt.datetime(v.lastCheck)} (${fmt.ago(v.lastCheck, now)})` : null],
              ['Checks', hs.checks !== undefined ? String(hs.checks) : null],
              ['Failures in a row', hs.consecutiveFailures !== undefined ? String(hs.consecutiveFailures) : null],
              ['Probe latency', hs.latencyMs !== undefined ? fmt.duration(hs.latencyMs) : null],
              ['Last probe', hs.lastCheckMs ? fmt.ago(hs.lastCheckMs, now) : null],
              ['Last probe error', hs.lastError ?? null],
              ['Transitions', hs.transitions ? Object.entries(hs.transitions).map(([k, n]) => `${k} ${n}`).join(' · ') : null],
            ]),
            v.error ? h('div', { class: 'error-box' }, h('p', { class: 'error-title' }, 'Last error'), h('p', null, v.error)) : null,
          ),
        ),
      ),
    );
    const tools = v.tools || [];
    const key = tools.map((t) => t.qualifiedName || t.name).join('\n');
    if (key !== toolsDrawn) {
      toolsDrawn = key;
      replace(
        toolsBox,
        listing(
          tools,
          (t) =>
            h(
              'li',
              { class: 'tool-li' },
              h('a', { href: href('tool', { server: v.id, tool: t.name }), class: 'strong' }, t.name),
              t.description ? h('div', { class: 'muted small clamp' }, t.description) : null,
            ),
          v.status === 'healthy' ? 'This server offers no tools (or none you may call).' : 'No tools listed: the server is not ready.',
        ),
      );
    }
    const prompts = Array.isArray(v.prompts) ? v.prompts : null;
    const resources = Array.isArray(v.resources) ? v.resources : null;
    const templates = Array.isArray(v.resourceTemplates) ? v.resourceTemplates : null;
    if (prompts || resources || templates) {
      replace(
        promptsBox,
        h(
          'div',
          { class: 'grid grid-2' },
          prompts ? card(`Prompts (${prompts.length})`, listing(prompts, (p) => h('li', null, h('b', null, p.name), p.description ? h('div', { class: 'muted small' }, p.description) : null), 'No prompts.')) : null,
          resources || templates
            ? card(
                `Resources (${(resources || []).length + (templates || []).length})`,
                listing(
                  [...(resources || []), ...(templates || [])],
                  (r) => h('li', null, h('code', null, r.uri ?? r.uriTemplate ?? ''), r.name ? h('span', { class: 'muted small' }, ` ${r.name}`) : null, r.description ? h('div', { class: 'muted small' }, r.description) : null),
                  'No resources.',
                ),
              )
            : null,
        ),
      );
    } else if (withItems) {
      const why = v.itemErrors ? Object.values(v.itemErrors).join('; ') : 'the server is not running.';
      replace(promptsBox, h('p', { class: 'muted small' }, `Prompts and resources could not be listed: ${why}`));
    }

    const [calls, m] = await Promise.allSettled([
      api(`/api/v1/requests${qs({ server: v.id, limit: 8 })}`),
      ctx.cache.get('metrics403') ? Promise.resolve(null) : api(`/api/v1/metrics${qs({ bucket: '1m', server: v.id })}`),
    ]);
    if (!ctx.alive) return;
    if (calls.status === 'fulfilled') {
      const list = calls.value.requests || [];
      replace(
        callsBox,
        listing(
          list,
          (e) => h('li', null, h('a', { href: href('request', { id: String(e.id) }) }, e.tool ?? e.method), h('span', { class: 'grow' }), pill(e.outcome), h('span', { class: 'muted small nowrap' }, ` ${fmt.duration(e.durationMs)} · ${fmt.ago(e.time, now)}`)),
          'No calls yet.',
        ),
      );
    } else replace(callsBox, errorBox(calls.reason, 'read the request log'));
    if (ctx.cache.get('metrics403') || (m.status === 'rejected' && m.reason instanceof ApiError && m.reason.status === 403)) {
      ctx.cache.set('metrics403', true);
      replace(chartBody, h('p', { class: 'muted small' }, 'Traffic charts need an admin role (auth.adminRoles).'));
    } else if (m.status === 'fulfilled' && m.value) {
      const from = now - 60 * 60_000;
      const pts = windowSeries(m.value.window?.servers?.[v.id]?.buckets, { bucketSeconds: 60, from, now });
      chart.update(pts, { from: pts[0]?.at ?? from, to: now });
    }
  }, 3000);
  return () => chart.destroy();
}
