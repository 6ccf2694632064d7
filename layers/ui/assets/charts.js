// Small SVG charts drawn by the dashboard itself (no library): time-series lines and areas
// with a hover read-out, sparklines and horizontal bars. Redrawn whole on every update
// (a few hundred points at most) and when their box is resized.

import { h, s, replace } from './dom.js';
import { niceTicks } from './series.js';
import { clock } from './format.js';

const PAD = { top: 10, right: 12, bottom: 22, left: 48 };

/**
 * A time-series chart in `host`. `series`: `[{ key, label, cls, area }]` read from each
 * point (`{ t, [key]: number | null }`). Returns `{ update(points, { from, to }) }`.
 */
export function timeChart(host, { series, height = 160, yFormat = String, yMax = null, emptyText = 'No calls in this period' }) {
  const box = h('div', { class: 'chart' });
  const svgHost = h('div', { class: 'chart-svg' });
  const tip = h('div', { class: 'chart-tip', hidden: true });
  const legend = h(
    'div',
    { class: 'chart-legend' },
    series.map((sr) => h('span', { class: ['legend-item', sr.cls] }, h('i', { class: 'swatch' }), sr.label)),
  );
  box.append(svgHost, tip, legend);
  host.append(box);
  let last = null;
  let width = 0;

  function draw() {
    if (!last) return;
    const { points, from, to } = last;
    width = svgHost.clientWidth || 600;
    const W = width;
    const H = height;
    const iw = Math.max(10, W - PAD.left - PAD.right);
    const ih = Math.max(10, H - PAD.top - PAD.bottom);
    let max = 0;
    for (const p of points) for (const sr of series) if (typeof p[sr.key] === 'number') max = Math.max(max, p[sr.key]);
    if (yMax !== null) max = Math.max(max, yMax);
    const ticks = niceTicks(0, max || 1, 4);
    const top = ticks[ticks.length - 1];
    const x = (t) => PAD.left + ((t - from) / Math.max(1, to - from)) * iw;
    const y = (v) => PAD.top + ih - (v / top) * ih;
    const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, class: 'chart-canvas', role: 'img' });
    const grid = s('g', { class: 'grid' });
    for (const tv of ticks) {
      grid.append(
        s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(tv), y2: y(tv) }),
        s('text', { x: PAD.left - 6, y: y(tv) + 4, 'text-anchor': 'end', text: yFormat(tv) }),
      );
    }
    // About one time label per 110 px.
    const nx = Math.max(2, Math.floor(iw / 110));
    for (let i = 0; i <= nx; i++) {
      const t = from + ((to - from) * i) / nx;
      grid.append(s('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === nx ? 'end' : 'middle', text: clock(t).slice(0, 5) }));
    }
    svg.append(grid);
    // Points that carry a call count are "data" when they had calls, whatever their value
    // (an error rate of 0 is a value); others when any value is above zero.
    const any = points.some((p) =>
      typeof p.calls === 'number' ? p.calls > 0 : series.some((sr) => typeof p[sr.key] === 'number' && p[sr.key] > 0),
    );
    for (const sr of series) {
      // Runs of defined values; null breaks the line.
      const runs = [];
      let run = [];
      for (const p of points) {
        const v = p[sr.key];
        if (typeof v === 'number' && Number.isFinite(v)) run.push([x(p.at ?? p.t), y(v)]);
        else if (run.length) {
          runs.push(run);
          run = [];
        }
      }
      if (run.length) runs.push(run);
      for (const r of runs) {
        const d = r.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('');
        if (sr.area && r.length > 1) {
          svg.append(s('path', { class: ['area', sr.cls].join(' '), d: `${d}L${r[r.length - 1][0].toFixed(1)},${y(0)}L${r[0][0].toFixed(1)},${y(0)}Z` }));
        }
        svg.append(s('path', { class: ['line', sr.cls].join(' '), d }));
        if (r.length === 1) svg.append(s('circle', { class: ['pt', sr.cls].join(' '), cx: r[0][0], cy: r[0][1], r: 2.5 }));
      }
    }
    const cursor = s('line', { class: 'cursor', x1: 0, x2: 0, y1: PAD.top, y2: PAD.top + ih, visibility: 'hidden' });
    svg.append(cursor);
    if (!any) svg.append(s('text', { class: 'chart-empty', x: PAD.left + iw / 2, y: PAD.top + ih / 2, 'text-anchor': 'middle', text: emptyText }));
    svg.addEventListener('mousemove', (ev) => {
      if (!points.length) return;
      const rect = svg.getBoundingClientRect();
      const px = ev.clientX - rect.left;
      const t = from + ((px - PAD.left) / iw) * (to - from);
      const when = (p) => p.at ?? p.t;
      let best = points[0];
      for (const p of points) if (Math.abs(when(p) - t) < Math.abs(when(best) - t)) best = p;
      cursor.setAttribute('x1', x(when(best)));
      cursor.setAttribute('x2', x(when(best)));
      cursor.setAttribute('visibility', 'visible');
      replace(
        tip,
        h('b', null, best.at !== undefined && best.at !== best.t ? `${clock(best.t).slice(0, 5)}–${clock(best.at).slice(0, 5)}` : clock(best.t)),
        series.map((sr) => h('div', null, h('i', { class: ['swatch', sr.cls] }), `${sr.label}: `, typeof best[sr.key] === 'number' ? yFormat(best[sr.key]) : '–')),
      );
      tip.hidden = false;
      const left = Math.min(Math.max(0, x(when(best)) + 10), W - 150);
      tip.style.left = `${left}px`;
    });
    svg.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      tip.hidden = true;
    });
    replace(svgHost, svg);
  }

  const ro = new ResizeObserver(() => {
    if (svgHost.clientWidth && svgHost.clientWidth !== width) draw();
  });
  ro.observe(svgHost);

  return {
    update(points, range) {
      last = { points, from: range.from, to: range.to };
      draw();
    },
    destroy() {
      ro.disconnect();
    },
  };
}

/** A sparkline of `values` (numbers or null), `w`×`h` px. */
export function sparkline(values, { w = 120, h: ht = 28, cls = 's-calls' } = {}) {
  const max = Math.max(1e-9, ...values.map((v) => (typeof v === 'number' ? v : 0)));
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(ht - 2 - ((v || 0) / max) * (ht - 4)).toFixed(1)}`);
  return s(
    'svg',
    { class: 'spark', width: w, height: ht, viewBox: `0 0 ${w} ${ht}`, 'aria-hidden': 'true' },
    s('path', { class: `area ${cls}`, d: `M0,${ht}L${pts.join('L')}L${w},${ht}Z` }),
    s('path', { class: `line ${cls}`, d: `M${pts.join('L')}` }),
  );
}

/** Horizontal bars: `[{ label, sub, value, text, href }]`, widths relative to the largest. */
export function bars(items) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return h(
    'ol',
    { class: 'bars' },
    items.map((i) => {
      const fill = h('span', { class: 'bar-fill' });
      fill.style.width = `${Math.max(1, (i.value / max) * 100).toFixed(1)}%`;
      const label = i.href ? h('a', { href: i.href }, i.label) : h('span', null, i.label);
      return h(
        'li',
        { class: 'bar' },
        h('div', { class: 'bar-label' }, label, i.sub ? h('span', { class: 'muted small' }, ` ${i.sub}`) : null),
        h('div', { class: 'bar-track' }, fill),
        h('div', { class: 'bar-value' }, i.text ?? String(i.value)),
      );
    }),
  );
}
