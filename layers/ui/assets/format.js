// Numbers, times and durations as the dashboard shows them. No DOM.

/** `1.2 ms`, `340 ms`, `2.4 s`, `0.05 ms`. */
export function duration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
  if (ms < 0.01 && ms > 0) return '<0.01 ms';
  if (ms < 10) return `${trim(ms.toFixed(2))} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${trim((ms / 1000).toFixed(ms < 10_000 ? 2 : 1))} s`;
  return uptime(ms / 1000);
}

function trim(s) {
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

/** `45s`, `12m 5s`, `3h 20m`, `4d 2h`. */
export function uptime(secs) {
  if (typeof secs !== 'number' || !Number.isFinite(secs) || secs < 0) return '–';
  const s = Math.floor(secs);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${r}s`;
  return `${r}s`;
}

/** `999`, `1.2k`, `3.4M`. */
export function count(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const a = Math.abs(n);
  if (a < 1000) return Number.isInteger(n) ? String(n) : trim(n.toFixed(a < 10 ? 2 : 1));
  if (a < 1e6) return `${trim((n / 1e3).toFixed(a < 1e4 ? 1 : 0))}k`;
  if (a < 1e9) return `${trim((n / 1e6).toFixed(a < 1e7 ? 1 : 0))}M`;
  return `${trim((n / 1e9).toFixed(1))}G`;
}

/** A rate per second: `0`, `0.35/s`, `12/s`, `1.2k/s`. */
export function rate(perSec) {
  if (typeof perSec !== 'number' || !Number.isFinite(perSec)) return '–';
  if (perSec === 0) return '0/s';
  if (perSec < 10) return `${trim(perSec.toFixed(2))}/s`;
  return `${count(Math.round(perSec))}/s`;
}

/** A ratio 0..1 as `0%`, `0.5%`, `12%`. */
export function percent(ratio) {
  if (typeof ratio !== 'number' || !Number.isFinite(ratio)) return '–';
  const p = ratio * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  if (p < 10) return `${trim(p.toFixed(1))}%`;
  return `${Math.round(p)}%`;
}

/** `512 B`, `1.5 KiB`, `2.0 MiB`. */
export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** How long ago `time` (RFC 3339 or epoch ms) was, from `now` (epoch ms): `just now`, `5s ago`, `3m ago`. */
export function ago(time, now = Date.now()) {
  const t = typeof time === 'number' ? time : Date.parse(time);
  if (!Number.isFinite(t)) return '–';
  const s = Math.round((now - t) / 1000);
  if (s < 2) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Local wall-clock time `HH:MM:SS` (with `.mmm` when `ms`). */
export function clock(time, ms = false) {
  const d = new Date(typeof time === 'number' ? time : Date.parse(time));
  if (Number.isNaN(d.getTime())) return '–';
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return ms ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** Local date and time `YYYY-MM-DD HH:MM:SS`. */
export function datetime(time) {
  const d = new Date(typeof time === 'number' ? time : Date.parse(time));
  if (Number.isNaN(d.getTime())) return '–';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d.getTime())}`;
}

/** JSON for reading: two-space indentation, `undefined` as empty. */
export function json(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

/** Every outcome label of the request log and the metrics, in the gateway's order. */
export const OUTCOMES = [
  'ok', 'tool_error', 'upstream_error', 'unavailable', 'timeout', 'client_error',
  'rate_limited', 'unauthorized', 'forbidden', 'internal_error', 'cancelled',
];

/** True for outcomes the gateway counts as errors (all but `ok`, and `cancelled`: the caller left). */
export function isError(outcome) {
  return typeof outcome === 'string' && outcome !== 'ok' && outcome !== 'cancelled';
}

/** A span of minutes: `30 min`, `24 h`, `7 d`. */
export function span(minutes) {
  if (typeof minutes !== 'number' || !Number.isFinite(minutes)) return '–';
  if (minutes < 120) return `${minutes} min`;
  if (minutes < 2880 || minutes % 1440) return `${trim((minutes / 60).toFixed(1))} h`;
  return `${minutes / 1440} d`;
}
