// Metrics: calls, errors and latency over the retention window, for all calls, per server
// and per tool, from `GET /api/v1/metrics?bucket=`.

import { h, replace, empty, errorBox, card, select, facts } from './dom.js';
import { api, qs, ApiError } from './api.js';
import { href } from './route.js';
import * as fmt from './format.js';
import { windowSeries, bucketFor } from './series.js';
import { timeChart, sparkline, bars } from './charts.js';

const RANGES = [['60', 'Last hour'], ['360', 'Last 6 hours'], ['1440', 'Last 24 hours'], ['10080', 'Last 7 days']];
const PAGE = 50;

export function mount(ctx) {
  const { el, query } = ctx;
  const rangeSel = select(RANGES, query.range ?? '60', { id: 'metrics-range', 'aria-label': 'Time range' });
  const serverSel = select([['', 'All servers']], query.server ?? '', { id: 'metrics-server', 'aria-label': 'Server' });
  if (query.server) serverSel.append(h('option', { value: query.server }, query.server));
  serverSel.value = query.server ?? '';
  const updated = h('span', { class: 'muted small' });
  const body = h('div');
  el.append(h('div', { class: 'page-head' }, h('h1', null, 'Metrics'), updated), h('div', { class: 'toolbar' }, rangeSel, serverSel), body);

  const totalBody = h('div');
  const latBody = h('div');
  const outcomesBox = h('div');
  const summaryBox = h('div');
  const serversBox = h('div', { class: 'grid grid-3' });
  const toolsBox = h('div');
  const layout = h(
    'div',
    null,
    h('div', { class: 'grid grid-2' }, card('Calls and errors per bucket', totalBody, { cls: 'chart-card' }), card('Latency', latBody, { cls: 'chart-card' })),
    h('div', { class: 'grid grid-2 metrics-mid' }, card('Outcomes', outcomesBox), card('Summary', summaryBox)),
    h('h2', { class: 'section-title' }, 'Servers'),
    serversBox,
    h('h2', { class: 'section-title' }, 'Tools'),
    toolsBox,
  );
  const callsSeries = [
    { key: 'calls', label: 'calls', cls: 's-calls', area: true },
    { key: 'errors', label: 'errors', cls: 's-errors' },
  ];
  const latSeries = [
    { key: 'p50', label: 'p50', cls: 's-p50' },
    { key: 'p99', label: 'p99', cls: 's-p99' },
  ];
  const cTotal = timeChart(totalBody, { series: callsSeries, yFormat: (v) => fmt.count(v) });
  const cLat = timeChart(latBody, { series: latSeries, yFormat: (v) => fmt.duration(v) });
  const serverCharts = new Map();
  let shownTools = PAGE;
  let openTool = query.tool ?? '';
  let toolChart = null;
  ctx.onLeave(() => {
    cTotal.destroy();
    cLat.destroy();
    for (const c of serverCharts.values()) c.destroy();
    toolChart?.destroy();
  });

  let poller = null;
  const restart = () => {
    ctx.setQuery({ range: rangeSel.value === '60' ? '' : rangeSel.value, server: serverSel.value, tool: openTool });
    poller?.stop();
    poller = ctx.poll(refresh, 10_000);
  };
  rangeSel.addEventListener('change', restart);
  serverSel.addEventListener('change', () => {
    for (const c of serverCharts.values()) c.destroy();
    serverCharts.clear();
    replace(serversBox);
    restart();
  });

  let serversKnown = false;
  async function refresh() {
    const minutes = Number(rangeSel.value) || 60;
    const b = bucketFor(minutes);
    let m;
    try {
      if (ctx.cache.get('metrics403')) throw new ApiError(403, 'admin_only', 'metrics need an admin role');
      m = await api(`/api/v1/metrics${qs({ bucket: b.param, server: serverSel.value })}`);
    } catch (e) {
      if (!ctx.alive) return;
      if (e instanceof ApiError && e.status === 403) {
        ctx.cache.set('metrics403', true);
        replace(body, empty('Metrics need an admin role', 'They cover every caller\'s calls, so the gateway shows them only to credentials with one of auth.adminRoles. The ', h('a', { href: '#/requests' }, 'request log'), ' shows your own calls.'));
        return 60_000;
      }
      replace(body, errorBox(e, 'read the metrics'));
      throw e;
    }
    if (!ctx.alive) return;
    if (layout.parentNode !== body) replace(body, layout);
    const now = Date.now();
    const w = m.window || {};
    const retention = w.retentionMinutes ?? minutes;
    const span = Math.min(minutes, retention);
    // Not before the gateway started, and over 5 buckets at least.
    const up = typeof m.uptimeSeconds === 'number' ? now - m.uptimeSeconds * 1000 : 0;
    const from = Math.min(now - 5 * b.minutes * 60_000, Math.max(now - span * 60_000, up));
    const bs = w.bucketSeconds ?? b.minutes * 60;
    const mk = (buckets) => windowSeries(buckets, { bucketSeconds: bs, from, now });
    updated.textContent = `${fmt.span(span)} in ${fmt.span(bs / 60)} buckets · updated ${fmt.clock(now)}`;
    if (!serversKnown) {
      serversKnown = true;
      const ids = Object.keys(m.servers || {}).concat(Object.keys(m.inFlight || {})).filter((x) => x !== '-');
      api('/api/v1/servers')
        .then((v) => {
          if (!ctx.alive) return;
          const all = [...new Set([...(v.servers || []).map((x) => x.id), ...ids])].sort();
          const cur = serverSel.value;
          replace(serverSel, h('option', { value: '' }, 'All servers'), all.map((id) => h('option', { value: id }, id)));
          serverSel.value = cur;
        })
        .catch(() => {});
    }

    // All calls (or the chosen server's).
    const sel = serverSel.value;
    const totalBuckets = sel ? w.servers?.[sel]?.buckets : w.buckets;
    const pts = mk(totalBuckets);
    const range = { from: pts[0]?.at ?? from, to: now };
    cTotal.update(pts, range);
    cLat.update(pts, range);
    const outcomes = sel ? w.servers?.[sel]?.outcomes : w.outcomes;
    const oe = Object.entries(outcomes || {}).sort((a, b2) => b2[1] - a[1]);
    const tw = sel ? w.servers?.[sel] : w;
    const lat = tw?.latencyMs || {};
    const inFlight = Object.entries(m.inFlight || {}).filter(([id]) => !sel || id === sel).reduce((a, [, n]) => a + n, 0);
    const authFails = Object.values(m.authFailures || {}).reduce((a, n) => a + n, 0);
    replace(
      summaryBox,
      facts([
        ['Calls', tw ? fmt.count(tw.calls) : '0'],
        ['Errors', tw ? `${fmt.count(tw.errors)} (${fmt.percent(tw.errorRate)})` : '0'],
        ['Latency', tw?.calls ? `p50 ${fmt.duration(lat.p50)} · p95 ${fmt.duration(lat.p95)} · p99 ${fmt.duration(lat.p99)} · max ${fmt.duration(lat.max)}` : '–'],
        ['In flight now', String(inFlight)],
        ['Kept', `${fmt.span(retention)} (monitor.retentionHours)`],
        sel ? null : ['Rate limiter', m.rateLimit ? `${fmt.count(m.rateLimit.allowed)} allowed · ${fmt.count(m.rateLimit.limited)} limited` : null],
        sel ? null : ['Auth failures', String(authFails)],
        sel ? null : ['Request log', m.requestLog ? (m.requestLog.enabled ? `${fmt.count(m.requestLog.entries)} entries` : 'off') : null],
      ].filter(Boolean)),
    );
    replace(outcomesBox, oe.length ? bars(oe.map(([k, n]) => ({ label: k.replace(/_/g, ' '), value: n, text: fmt.count(n) }))) : empty('No calls in this period'));

    // Per server.
    const entries = Object.entries(w.servers || {}).filter(([id]) => !sel || id === sel);
    if (!entries.length) {
      for (const c of serverCharts.values()) c.destroy();
      serverCharts.clear();
      replace(serversBox, empty('No calls in this period', 'Servers appear here once they have been called.'));
    } else {
      if (serversBox.querySelector('.empty')) replace(serversBox);
      for (const [id, sw] of entries) {
        let c = serverCharts.get(id);
        if (!c) {
          const host = h('div');
          const stats = h('p', { class: 'muted small', dataset: { stats: id } });
          serversBox.append(card(id === '-' ? '(no server)' : h('a', { href: href('server', { id }) }, id), h('div', null, stats, host), { cls: 'chart-card small-chart', actions: null }));
          c = timeChart(host, { series: callsSeries, height: 120, yFormat: (v) => fmt.count(v) });
          c.stats = stats;
          serverCharts.set(id, c);
        }
        c.stats.textContent = `${fmt.count(sw.calls)} calls · ${fmt.percent(sw.errorRate)} errors · p50 ${fmt.duration(sw.latencyMs?.p50)} · p99 ${fmt.duration(sw.latencyMs?.p99)}`;
        const sp = mk(sw.buckets);
        c.update(sp, { from: sp[0]?.at ?? from, to: now });
      }
    }

    // Per tool: a table, busiest first, with a sparkline each; a click opens its chart.
    const tools = (w.tools || []).filter((t) => t.calls > 0).sort((a, b2) => b2.calls - a.calls);
    toolChart?.destroy();
    toolChart = null;
    if (!tools.length) {
      replace(toolsBox, empty('No tool calls in this period'));
      return;
    }
    const key = (t) => `${t.server}\u0000${t.tool}`;
    const rows = [];
    for (const t of tools.slice(0, shownTools)) {
      const series = mk(t.buckets);
      const open = key(t) === openTool;
      const tr = h(
        'tr',
        { class: ['tool-metric', open && 'open'], dataset: { tool: t.tool } },
        h('td', { 'data-label': 'Tool' }, h('button', { type: 'button', class: 'linklike', 'aria-expanded': String(open), onclick: () => {
          openTool = open ? '' : key(t);
          ctx.setQuery({ range: rangeSel.value === '60' ? '' : rangeSel.value, server: serverSel.value, tool: openTool });
          refresh();
        } }, t.tool), h('div', { class: 'muted small' }, t.server)),
        h('td', { 'data-label': 'Calls', class: 'num' }, fmt.count(t.calls)),
        h('td', { 'data-label': 'Errors', class: 'num' }, t.errors ? `${fmt.count(t.errors)} (${fmt.percent(t.errorRate)})` : '0'),
        h('td', { 'data-label': 'p50', class: 'num' }, fmt.duration(t.latencyMs?.p50)),
        h('td', { 'data-label': 'p99', class: 'num' }, fmt.duration(t.latencyMs?.p99)),
        h('td', { 'data-label': 'Trend', class: 'spark-cell' }, sparkline(series.map((p) => p.calls))),
      );
      rows.push(tr);
      if (open) {
        const callsHost = h('div');
        const latHost = h('div');
        rows.push(
          h(
            'tr',
            { class: 'tool-chart-row' },
            h(
              'td',
              { colspan: '6' },
              h('p', { class: 'small' }, h('a', { href: href('tool', { server: t.server, tool: t.tool }) }, `Open ${t.tool} →`)),
              h('div', { class: 'grid grid-2 tool-charts' }, callsHost, latHost),
            ),
          ),
        );
        queueMicrotask(() => {
          const c1 = timeChart(callsHost, { series: callsSeries, height: 140, yFormat: (v) => fmt.count(v) });
          const c2 = timeChart(latHost, { series: latSeries, height: 140, yFormat: (v) => fmt.duration(v) });
          c1.update(series, { from: series[0]?.at ?? from, to: now });
          c2.update(series, { from: series[0]?.at ?? from, to: now });
          toolChart = { destroy: () => (c1.destroy(), c2.destroy()) };
        });
      }
    }
    const more =
      tools.length > shownTools
        ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => {
            shownTools += PAGE;
            refresh();
          } }, `Show ${Math.min(PAGE, tools.length - shownTools)} more of ${tools.length - shownTools}`)
        : null;
    replace(
      toolsBox,
      h(
        'div',
        { class: 'card table-card' },
        h('table', { class: 'table responsive', id: 'tool-metrics' }, h('thead', null, h('tr', null, ['Tool', 'Calls', 'Errors', 'p50', 'p99', 'Trend'].map((x) => h('th', { class: ['Calls', 'Errors', 'p50', 'p99'].includes(x) ? 'num' : null }, x)))), h('tbody', null, rows)),
      ),
      more,
    );
  }
  restart();
}
