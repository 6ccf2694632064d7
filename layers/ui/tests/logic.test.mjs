// Routing, formatting, chart series and filtering. Run: node --test layers/ui/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRoute, href, section } from '../assets/route.js';
import * as fmt from '../assets/format.js';
import { windowSeries, bucketsFromLog, niceTicks, busiest, quantile, bucketFor } from '../assets/series.js';
import { filterTools, requestFilter, serverSideParams, LogStore, visibleRange } from '../assets/search.js';

test('routes parse and build both ways', () => {
  assert.deepEqual(parseRoute(''), { page: 'overview', params: {}, query: {} });
  assert.deepEqual(parseRoute('#/'), { page: 'overview', params: {}, query: {} });
  assert.equal(parseRoute('#/servers').page, 'servers');
  assert.deepEqual(parseRoute('#/servers/my-srv').params, { id: 'my-srv' });
  assert.deepEqual(parseRoute('#/tools/fs/read%20file').params, { server: 'fs', tool: 'read file' });
  assert.deepEqual(parseRoute('#/requests/42'), { page: 'request', params: { id: '42' }, query: {} });
  assert.equal(parseRoute('#/requests/abc').page, 'notfound');
  assert.equal(parseRoute('#/nope').page, 'notfound');
  assert.equal(parseRoute('#/tools/%E0%A4%A').page, 'notfound');
  assert.deepEqual(parseRoute('#/requests?server=a&status=error').query, { server: 'a', status: 'error' });
  for (const [page, params, query] of [
    ['tool', { server: 's/x', tool: 'a b?c#d' }, {}],
    ['server', { id: 'weird%id' }, {}],
    ['requests', {}, { server: 'x', tool: 'y z' }],
    ['request', { id: '7' }, {}],
    ['metrics', {}, {}],
  ]) {
    const r = parseRoute(href(page, params, query));
    assert.equal(r.page, page);
    assert.deepEqual(r.params, params);
    assert.deepEqual(r.query, query);
  }
  assert.equal(href('requests', {}, { server: '', tool: undefined }), '#/requests');
  assert.equal(section('tool'), 'tools');
  assert.equal(section('overview'), 'overview');
});

test('formatting', () => {
  assert.equal(fmt.duration(0.004), '<0.01 ms');
  assert.equal(fmt.duration(1.5), '1.5 ms');
  assert.equal(fmt.duration(340.2), '340 ms');
  assert.equal(fmt.duration(2400), '2.4 s');
  assert.equal(fmt.duration(undefined), '–');
  assert.equal(fmt.uptime(59), '59s');
  assert.equal(fmt.uptime(3725), '1h 2m');
  assert.equal(fmt.uptime(90061), '1d 1h');
  assert.equal(fmt.count(999), '999');
  assert.equal(fmt.count(1234), '1.2k');
  assert.equal(fmt.count(2_500_000), '2.5M');
  assert.equal(fmt.rate(0), '0/s');
  assert.equal(fmt.rate(0.35), '0.35/s');
  assert.equal(fmt.rate(1500), '1.5k/s');
  assert.equal(fmt.percent(0), '0%');
  assert.equal(fmt.percent(0.0005), '<0.1%');
  assert.equal(fmt.percent(0.125), '13%');
  assert.equal(fmt.percent(0.05), '5%');
  assert.equal(fmt.bytes(2048), '2.0 KiB');
  assert.equal(fmt.span(30), '30 min');
  assert.equal(fmt.span(1440), '24 h');
  assert.equal(fmt.span(10080), '7 d');
  const now = Date.parse('2026-01-01T00:10:00Z');
  assert.equal(fmt.ago('2026-01-01T00:09:59.5Z', now), 'just now');
  assert.equal(fmt.ago('2026-01-01T00:09:30Z', now), '30s ago');
  assert.equal(fmt.ago('2026-01-01T00:00:00Z', now), '10m ago');
  assert.equal(fmt.ago('garbage', now), '–');
  assert.equal(fmt.isError('ok'), false);
  assert.equal(fmt.isError('tool_error'), true);
  assert.equal(fmt.isError('cancelled'), false);
});

test('window series: zero-filled, the filling bucket measured over its elapsed time', () => {
  const m = (min) => Date.parse('2026-01-01T00:00:00Z') + min * 60_000;
  const buckets = [
    { start: new Date(m(1)).toISOString(), calls: 60, errors: 6, latencyMs: { p50: 2, p99: 9 } },
    { start: new Date(m(3)).toISOString(), calls: 10, errors: 0, latencyMs: { p50: 1, p99: 3 } },
  ];
  const s = windowSeries(buckets, { bucketSeconds: 60, from: m(0), now: m(3) + 20_000 });
  assert.deepEqual(s.map((p) => p.calls), [0, 60, 0, 10]);
  assert.deepEqual(s.map((p) => p.t), [m(0), m(1), m(2), m(3)]);
  assert.deepEqual(s.map((p) => p.at), [m(1), m(2), m(3), m(3) + 20_000]);
  assert.equal(s[1].perSec, 1);
  assert.equal(s[1].errorRate, 0.1);
  assert.equal(s[3].perSec, 0.5); // 10 calls in the 20 s the current minute has lasted
  assert.equal(s[0].p50, null);
  assert.equal(s[1].p99, 9);
});

test('buckets from the request log (the fallback for callers without the metrics API)', () => {
  const e = (t, outcome, d) => ({ time: `2026-01-01T00:0${t}Z`, outcome, durationMs: d });
  const b = bucketsFromLog([e('0:05', 'ok', 1), e('0:50', 'timeout', 30), e('1:10', 'ok', 2), e('0:20', 'ok', 3)], 60);
  assert.equal(b.length, 2);
  assert.equal(b[0].start, '2026-01-01T00:00:00.000Z');
  assert.equal(b[0].calls, 3);
  assert.equal(b[0].errors, 1);
  assert.equal(b[0].latencyMs.p50, 3);
  assert.equal(b[0].latencyMs.p99, 30);
  assert.equal(b[1].calls, 1);
  assert.equal(quantile([], 0.5), null);
});

test('ticks, busiest tools, bucket widths', () => {
  assert.deepEqual(niceTicks(0, 10, 4), [0, 2.5, 5, 7.5, 10]);
  assert.deepEqual(niceTicks(0, 0.3, 3), [0, 0.1, 0.2, 0.3]);
  const t = niceTicks(0, 97, 4);
  assert.ok(t[t.length - 1] >= 97 && t[0] === 0, String(t));
  assert.deepEqual(niceTicks(0, 0, 4).slice(0, 2), [0, 0.25]);
  const tools = [
    { tool: 'b', calls: 5 },
    { tool: 'a', calls: 5 },
    { tool: 'c', calls: 0 },
    { tool: 'd', calls: 9 },
  ];
  assert.deepEqual(busiest(tools, 2).map((x) => x.tool), ['d', 'a']);
  assert.equal(bucketFor(60).param, '1m');
  assert.equal(bucketFor(360).param, '5m');
  assert.equal(bucketFor(1440).param, '15m');
});

test('tool search: every word in name, description, server or tag', () => {
  const tools = [
    { server: 'fs', name: 'read_file', description: 'Read a file from disk' },
    { server: 'fs', name: 'write_file', description: 'Write a file' },
    { server: 'web', name: 'fetch', description: 'Fetch a URL', title: 'HTTP fetch' },
  ];
  const tags = { fs: ['local', 'files'], web: ['net'] };
  const names = (f) => filterTools(tools, f, (s) => tags[s]).map((t) => t.name);
  assert.deepEqual(names({ q: 'file' }), ['read_file', 'write_file']);
  assert.deepEqual(names({ q: 'FILE disk' }), ['read_file']);
  assert.deepEqual(names({ q: 'net' }), ['fetch']);
  assert.deepEqual(names({ q: 'http' }), ['fetch']);
  assert.deepEqual(names({ server: 'web' }), ['fetch']);
  assert.deepEqual(names({ tag: 'local', q: 'write' }), ['write_file']);
  assert.deepEqual(names({ q: 'zzz' }), []);
});

test('request filters, and the part the API applies itself', () => {
  const now = Date.parse('2026-01-01T01:00:00Z');
  const entries = [
    { id: 1, server: 'a', tool: 'x', outcome: 'ok', status: 200, identity: 'alice', time: '2026-01-01T00:59:30Z' },
    { id: 2, server: 'a', tool: 'y', outcome: 'timeout', status: 504, time: '2026-01-01T00:50:00Z' },
    { id: 3, server: 'b', tool: 'x', outcome: 'tool_error', status: 200, identity: 'bob', time: '2026-01-01T00:59:59Z' },
    { id: 4, server: 'b', tool: 'x', outcome: 'cancelled', status: 499, time: '2026-01-01T00:59:59Z' },
  ];
  const ids = (f) => entries.filter(requestFilter(f, now)).map((e) => e.id);
  assert.deepEqual(ids({}), [1, 2, 3, 4]);
  assert.deepEqual(ids({ server: 'a' }), [1, 2]);
  assert.deepEqual(ids({ status: 'error' }), [2, 3]);
  assert.deepEqual(ids({ status: '504' }), [2]);
  assert.deepEqual(ids({ status: 'ok' }), [1]);
  assert.deepEqual(ids({ caller: 'AL' }), [1]);
  assert.deepEqual(ids({ since: '60' }), [1, 3, 4]);
  assert.deepEqual(serverSideParams({ server: 'a', status: 'error', caller: 'x', since: '60' }), { server: 'a', since: '60' });
  assert.deepEqual(serverSideParams({ status: 'timeout' }), { status: 'timeout' });
});

test('the log store merges pages without duplicates and keeps its bound', () => {
  const s = new LogStore(5);
  const e = (id) => ({ id });
  assert.deepEqual(s.add([e(3), e(2), e(1)]).map((x) => x.id), [1, 2, 3]);
  assert.deepEqual(s.add([e(3), e(4)]).map((x) => x.id), [4]);
  assert.equal(s.maxId, 4);
  assert.equal(s.newest(0).id, 4);
  s.add([e(5), e(6), e(7)]);
  assert.equal(s.length, 5);
  assert.deepEqual(s.all().map((x) => x.id), [3, 4, 5, 6, 7]);
  assert.equal(s.find(2), undefined);
  assert.equal(s.find(6).id, 6);
  // A late page with older entries is merged in order.
  const t = new LogStore(10);
  t.add([e(10), e(11)]);
  t.add([e(5), e(11), e(12)]);
  assert.deepEqual(t.all().map((x) => x.id), [5, 10, 11, 12]);
  // 10 000 entries, added a page at a time, stay cheap.
  const big = new LogStore(10000);
  const t0 = Date.now();
  for (let p = 0; p < 200; p++) big.add(Array.from({ length: 100 }, (_, i) => e(p * 100 + i + 1)));
  assert.equal(big.length, 10000);
  assert.equal(big.newest(0).id, 20000);
  assert.equal(big.newest(9999).id, 10001);
  assert.ok(Date.now() - t0 < 1000);
});

test('visible range of a virtual list', () => {
  assert.deepEqual(visibleRange(0, 300, 30, 10000, 0), [0, 10]);
  assert.deepEqual(visibleRange(3000, 300, 30, 10000, 2), [98, 112]);
  assert.deepEqual(visibleRange(0, 300, 30, 3, 8), [0, 3]);
  assert.deepEqual(visibleRange(0, 300, 30, 0), [0, 0]);
});
