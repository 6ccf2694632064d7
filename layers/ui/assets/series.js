// Chart data from the metrics API, without the DOM.

import { isError } from './format.js';
//
// `GET /api/v1/metrics?bucket=1m` lists only buckets that had calls; the charts want one
// point per bucket width, zeros included, and the bucket still filling (the current minute)
// measured over the seconds it has lasted so far rather than over the whole width.

/**
 * One point per bucket from `from` to `now` (epoch ms): `{ t, at, calls, errors, errorRate,
 * perSec, p50, p99 }`, `t` the bucket's start, `at` its end (or `now`). Latencies are `null` where there were no calls
 * (a gap in the line, not a zero).
 */
export function windowSeries(buckets, { bucketSeconds, from, now }) {
  const w = bucketSeconds * 1000;
  const byStart = new Map();
  for (const b of buckets || []) {
    const t = Date.parse(b.start);
    if (Number.isFinite(t)) byStart.set(Math.floor(t / w) * w, b);
  }
  const first = Math.floor(from / w) * w;
  const last = Math.floor(now / w) * w;
  const out = [];
  for (let t = first; t <= last; t += w) {
    const b = byStart.get(t);
    const calls = b?.calls ?? 0;
    const errors = b?.errors ?? 0;
    // The bucket still filling covers only the time since it started (at least a second).
    const secs = t === last ? Math.max(1, (now - t) / 1000) : bucketSeconds;
    out.push({
      t,
      // Where the chart draws it: at the bucket's end (a rate over the bucket is known
      // then), or now for the bucket still filling.
      at: Math.min(t + w, now),
      calls,
      errors,
      errorRate: calls ? errors / calls : 0,
      perSec: calls / secs,
      p50: calls ? b?.latencyMs?.p50 ?? null : null,
      p99: calls ? b?.latencyMs?.p99 ?? null : null,
    });
  }
  return out;
}

/** The `q` quantile (0..1) of an ascending array, nearest rank; `null` when empty. */
export function quantile(sorted, q) {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/**
 * Buckets in the API's shape built from request-log entries (`time`, `outcome`,
 * `durationMs`): what the overview draws for a caller whom the metrics API refuses (it
 * covers every caller's calls), from the calls that caller may see.
 */
export function bucketsFromLog(entries, bucketSeconds) {
  const w = bucketSeconds * 1000;
  const groups = new Map();
  for (const e of entries || []) {
    const t = Date.parse(e.time);
    if (!Number.isFinite(t)) continue;
    const start = Math.floor(t / w) * w;
    let g = groups.get(start);
    if (!g) groups.set(start, (g = { calls: 0, errors: 0, lat: [] }));
    g.calls++;
    if (isError(e.outcome)) g.errors++;
    if (typeof e.durationMs === 'number') g.lat.push(e.durationMs);
  }
  return [...groups.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([start, g]) => {
      g.lat.sort((a, b) => a - b);
      return {
        start: new Date(start).toISOString(),
        calls: g.calls,
        errors: g.errors,
        errorRate: g.errors / g.calls,
        latencyMs: { p50: quantile(g.lat, 0.5), p99: quantile(g.lat, 0.99) },
      };
    });
}

/** About `n` round tick values covering [min, max] (1, 2, 2.5, 5 × 10^k steps). */
export function niceTicks(min, max, n = 4) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0];
  if (max <= min) max = min + 1;
  const raw = (max - min) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.floor(min / step) * step;
  const ticks = [];
  for (let v = start; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((start + step * ticks.length).toPrecision(12)));
  return ticks;
}

/** The `n` entries with the most calls, most first; ties by name. */
export function busiest(items, n) {
  return [...(items || [])]
    .filter((x) => x.calls > 0)
    .sort((a, b) => b.calls - a.calls || String(a.tool).localeCompare(String(b.tool)))
    .slice(0, n);
}

/** The bucket width for a range of `minutes` so a chart keeps ≤ ~120 points. */
export function bucketFor(minutes) {
  for (const [m, label] of [[1, '1m'], [5, '5m'], [15, '15m'], [60, '1h']]) {
    if (minutes / m <= 120) return { minutes: m, param: label };
  }
  return { minutes: 1440, param: '1d' };
}
