// Overview: the gateway's state, live charts of the last 30 minutes, the busiest tools, the
// servers and the latest errors. Refreshed every 2 s while shown.

import { h, replace, pill, empty, errorBox, card, facts } from './dom.js';
import { api, metricsTotals, ApiError } from './api.js';
import { href } from './route.js';
import * as fmt from './format.js';
import { windowSeries, bucketsFromLog, busiest, quantile } from './series.js';
import { timeChart, bars } from './charts.js';

const MINUTES = 30;

export function mount(ctx) {
  const { el } = ctx;
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Overview'), h('span', { class: 'muted small', id: 'overview-updated' }));
  const alert = h('div', { class: 'alerts' });
  const kpis = h('div', { class: 'kpis', id: 'kpis' });
  const about = h('div', { class: 'about muted small' });
  const chartsRow = h('div', { class: 'grid grid-3' });
  const rangeLabel = h('p', { class: 'section-label' }, `Last ${MINUTES} minutes`);
  const chartNote = h('p', { class: 'muted small chart-note', hidden: true });
  const mk = (title, opts) => {
    const body = h('div');
    chartsRow.append(card(title, body, { cls: 'chart-card' }));
    return timeChart(body, opts);
  };
  const cRate = mk('Calls per second', { series: [{ key: 'perSec', label: 'calls/s', cls: 's-calls', area: true }], yFormat: (v) => fmt.count(v) });
  const cErr = mk('Error rate', { series: [{ key: 'errorRate', label: 'errors', cls: 's-errors', area: true }], yFormat: fmt.percent, yMax: 0.05 });
  const cLat = mk('Latency', {
    series: [
      { key: 'p50', label: 'p50', cls: 's-p50' },
      { key: 'p99', label: 'p99', cls: 's-p99' },
    ],
    yFormat: (v) => fmt.duration(v),
  });
  const serversBox = h('div');
  const busyBox = h('div');
  const busyNote = h('span', { class: 'muted small' }, 'since start');
  const errorsBox = h('div');
  el.append(
    head,
    alert,
    kpis,
    about,
    rangeLabel,
    chartNote,
    chartsRow,
    h(
      'div',
      { class: 'grid grid-3' },
      card('Servers', serversBox, { actions: h('a', { href: '#/servers', class: 'small' }, 'All servers →') }),
      card('Busiest tools', busyBox, { actions: busyNote }),
      card('Recent errors', errorsBox, { actions: h('a', { href: href('requests', {}, { status: 'error' }), class: 'small' }, 'All errors →') }),
    ),
  );


  // Errors seen so far, by id: a busy gateway's latest page may hold none of them.
  const errorsSeen = new Map();
  let maxId = 0;
  let counted = 0;
  ctx.poll(async () => {
    // Learnt once per sign-in: a caller without an admin role gets 403 from the metrics.
    let metricsForbidden = ctx.cache.get('metrics403') === true;
    const want = [
      api('/api/v1/health'),
      api('/api/v1/servers'),
      metricsForbidden ? Promise.resolve(null) : metricsTotals('1m'),
      // The first look goes further back; later ones only need what came since.
      api(`/api/v1/requests?limit=${metricsForbidden ? 2000 : maxId ? 200 : 1000}${metricsForbidden ? `&since=${MINUTES * 60}` : ''}`),
    ];
    const [health, servers, metrics, log] = await Promise.allSettled(want);
    if (!ctx.alive) return;
    const now = Date.now();
    replace(alert);
    if (health.status === 'rejected') {
      alert.append(errorBox(health.reason, 'read the gateway health'));
      throw health.reason;
    }
    const hv = health.value;
    ctx.setHealth(hv);
    const svList = servers.status === 'fulfilled' ? servers.value.servers || [] : [];
    if (servers.status === 'rejected' && servers.reason?.status !== 429) alert.append(errorBox(servers.reason, 'list the servers'));
    if (metrics.status === 'rejected') {
      if (metrics.reason instanceof ApiError && metrics.reason.status === 403) {
        metricsForbidden = true;
        ctx.cache.set('metrics403', true);
      } else if (metrics.reason?.status !== 429) alert.append(errorBox(metrics.reason, 'read the metrics'));
    }
    const entries = log.status === 'fulfilled' ? log.value.requests || [] : [];
    const mv = metrics.status === 'fulfilled' ? metrics.value : null;

    // KPIs.
    const sv = hv.servers || {};
    // Not before the gateway started (a young gateway's charts would be mostly empty), and
    // over 5 minutes at least.
    const started = Date.parse(hv.startedAt);
    const from = Math.min(now - 5 * 60_000, Math.max(now - MINUTES * 60_000, Number.isFinite(started) ? started : 0));
    const buckets = mv ? mv.window?.buckets : bucketsFromLog(entries, 60);
    const points = windowSeries(buckets, { bucketSeconds: 60, from, now });
    const lastTwo = points.slice(-2);
    const secs = lastTwo.length === 2 ? 60 + Math.max(1, (now - lastTwo[1].t) / 1000) : 60;
    const callsNow = lastTwo.reduce((a, p) => a + p.calls, 0) / secs;
    const win = mv?.window;
    const ownLat = win ? [] : entries.map((e) => e.durationMs).filter((x) => typeof x === 'number').sort((a, b) => a - b);
    const kpi = (label, value, sub, cls = '') => h('div', { class: ['kpi', cls] }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), sub ? h('div', { class: 'kpi-sub muted small' }, sub) : null);
    replace(
      kpis,
      kpi('Gateway', pill(hv.status), `up ${fmt.uptime(hv.uptime)}`, 'kpi-status'),
      kpi('Servers healthy', `${sv.healthy ?? 0} / ${sv.enabled ?? 0}`, sv.total !== sv.enabled ? `${sv.total} configured` : 'enabled servers', sv.healthy === sv.enabled ? '' : 'kpi-warn'),
      kpi('Calls / s', fmt.rate(callsNow), 'last minute'),
      kpi(win ? `Error rate (${fmt.span(win.retentionMinutes)})` : 'Error rate', win ? fmt.percent(win.errorRate) : fmt.percent(points.reduce((a, p) => a + p.errors, 0) / Math.max(1, points.reduce((a, p) => a + p.calls, 0))), win ? `${fmt.count(win.calls)} calls` : 'your calls'),
      win
        ? kpi(`Latency p50 (${fmt.span(win.retentionMinutes)})`, win.calls ? fmt.duration(win.latencyMs.p50) : '–', win.calls ? `p99 ${fmt.duration(win.latencyMs.p99)}` : 'no calls yet')
        : kpi('Latency p50', ownLat.length ? fmt.duration(quantile(ownLat, 0.5)) : '–', ownLat.length ? `p99 ${fmt.duration(quantile(ownLat, 0.99))}, yours` : 'your calls'),
      kpi('MCP sessions', fmt.count(hv.mcpSessions ?? 0), 'open now'),
    );
    replace(
      about,
      `mcp-gateway ${hv.version ?? ''}`,
      hv.replica ? ` · replica ${hv.replica}` : '',
      hv.startedAt ? ` · started ${fmt.datetime(hv.startedAt)}` : '',
      hv.config?.generation !== undefined ? ` · config generation ${hv.config.generation}${hv.config.loadedAt ? `, loaded ${fmt.ago(hv.config.loadedAt, now)}` : ''}` : '',
      hv.cluster ? ` · cluster${hv.cluster.redis ? ' with Redis' : ''}` : '',
    );
    chartNote.hidden = !metricsForbidden;
    chartNote.textContent = metricsForbidden
      ? 'The metrics API covers every caller and needs an admin role (auth.adminRoles); these charts show your own calls from the request log.'
      : '';
    const range = { from: points.length ? points[0].at : from, to: now };
    rangeLabel.textContent = `Last ${Math.max(1, Math.round((now - from) / 60_000))} minutes`;
    cRate.update(points, range);
    cErr.update(points, range);
    cLat.update(points, range);

    // Servers.
    if (servers.status === 'fulfilled') {
      if (!svList.length) {
        replace(serversBox, empty('No servers configured', 'Add one under servers: in mcp-gateway.yml (see docs/configuration.md), then restart the gateway.'));
      } else {
        replace(
          serversBox,
          h(
            'ul',
            { class: 'mini-list' },
            svList.map((sv1) =>
              h(
                'li',
                { dataset: { server: sv1.id, status: sv1.status } },
                h('span', { class: ['dot', `dot-${sv1.status}`] }),
                h('a', { href: href('server', { id: sv1.id }) }, sv1.name || sv1.id),
                h('span', { class: 'muted small' }, ` ${sv1.transport} · ${sv1.toolCount} tools`),
                h('span', { class: 'grow' }),
                pill(sv1.status),
              ),
            ),
          ),
        );
      }
    }

    // Busiest tools (cumulative since start).
    if (mv) {
      const top = busiest((mv.tools || []).filter((t) => t.server !== '-'), 8);
      replace(
        busyBox,
        top.length
          ? bars(top.map((t) => ({ label: t.tool, sub: t.server, value: t.calls, text: `${fmt.count(t.calls)}${t.errors ? ` · ${fmt.percent(t.errorRate)} err` : ''}`, href: href('tool', { server: t.server, tool: t.tool }) })))
          : empty('No tool calls yet', 'Call one from the ', h('a', { href: '#/tools' }, 'Tools'), ' page, or through /mcp.'),
      );
    } else if (metricsForbidden) {
      // From the caller's own recent calls.
      const counts = new Map();
      for (const e of entries) {
        if (!e.tool || e.server === '-') continue;
        const k = `${e.server}\u0000${e.tool}`;
        const c = counts.get(k) || { server: e.server, tool: e.tool, calls: 0 };
        c.calls++;
        counts.set(k, c);
      }
      const top = busiest([...counts.values()], 8);
      replace(
        busyBox,
        top.length
          ? bars(top.map((t) => ({ label: t.tool, sub: t.server, value: t.calls, text: fmt.count(t.calls), href: href('tool', { server: t.server, tool: t.tool }) })))
          : empty('No calls of yours yet', 'Call a tool from the ', h('a', { href: '#/tools' }, 'Tools'), ' page.'),
      );
      busyNote.textContent = 'your recent calls';
    }

    // Recent errors.
    if (log.status === 'rejected') replace(errorsBox, errorBox(log.reason, 'read the request log'));
    else if (log.value.enabled === false) replace(errorsBox, empty('The request log is off', 'Set monitor.requestLog: true to keep recent calls.'));
    else {
      let top = maxId;
      for (const e of entries) {
        if (e.id > maxId) counted++;
        top = Math.max(top, e.id);
        if (fmt.isError(e.outcome)) errorsSeen.set(e.id, e);
      }
      maxId = top;
      const errs = [...errorsSeen.values()].sort((a, b) => b.id - a.id).slice(0, 6);
      for (const k of [...errorsSeen.keys()]) if (!errs.some((e) => e.id === k)) errorsSeen.delete(k);
      replace(
        errorsBox,
        errs.length
          ? h(
              'ul',
              { class: 'mini-list errors-list' },
              errs.map((e) =>
                h(
                  'li',
                  null,
                  h('a', { href: href('request', { id: String(e.id) }) }, `${e.server === '-' ? '' : `${e.server} · `}${e.tool ?? e.method}`),
                  h('span', { class: 'grow' }),
                  pill(e.outcome),
                  h('span', { class: 'muted small nowrap' }, ` ${fmt.ago(e.time, now)}`),
                  e.error ? h('div', { class: 'muted small err-text' }, e.error) : null,
                ),
              ),
            )
          : empty('No errors', `None in the last ${fmt.count(counted)} calls.`),
      );
    }
    const upd = el.querySelector('#overview-updated');
    if (upd) upd.textContent = `updated ${fmt.clock(now)}`;
    // Rate limited (rateLimit applies to the dashboard's calls too): wait as told.
    const limited = [health, servers, metrics, log].filter((r) => r.status === 'rejected' && r.reason?.status === 429);
    if (limited.length) {
      if (upd) upd.textContent = `rate limited · refreshing less often`;
      return Math.max(...limited.map((r) => (r.reason.retryAfter ?? 10) * 1000));
    }
  }, 2000);
}
