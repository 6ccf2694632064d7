// Filtering of tools and request-log entries, and the in-memory request log the Requests
// page follows. No DOM.

import { isError } from './format.js';

/** The search words of `q` (lowercase, split on spaces). */
function words(q) {
  return String(q || '').toLowerCase().split(/\s+/).filter(Boolean);
}

/**
 * Tools matching every word of `q` in their name, qualified name, title, description,
 * server id or the server's tags (`tagsOf(serverId)`), and the `server` / `tag` filters.
 */
export function filterTools(tools, { q = '', server = '', tag = '' } = {}, tagsOf = () => []) {
  const ws = words(q);
  const hay = new Map();
  return tools.filter((t) => {
    if (server && t.server !== server) return false;
    const tags = tagsOf(t.server) || [];
    if (tag && !tags.includes(tag)) return false;
    if (!ws.length) return true;
    let h = hay.get(t);
    if (h === undefined) {
      h = [t.name, t.qualifiedName, t.title, t.description, t.server, ...tags]
        .filter((x) => typeof x === 'string')
        .join('\n')
        .toLowerCase();
      hay.set(t, h);
    }
    return ws.every((w) => h.includes(w));
  });
}

/**
 * A predicate over request-log entries: `server`, `tool` exact; `status` `ok`, `error`
 * (any outcome counted as an error), an outcome label or an HTTP status; `caller` a substring of the
 * identity; `since` seconds back from `now`.
 */
export function requestFilter({ server = '', tool = '', status = '', caller = '', since = '' } = {}, now = Date.now()) {
  const cutoff = since ? now - Number(since) * 1000 : null;
  const who = caller.toLowerCase();
  return (e) => {
    if (server && e.server !== server) return false;
    if (tool && e.tool !== tool) return false;
    if (status) {
      if (status === 'error') {
        if (!isError(e.outcome)) return false;
      } else if (e.outcome !== status && String(e.status) !== status) return false;
    }
    if (who && !String(e.identity ?? '').toLowerCase().includes(who)) return false;
    if (cutoff !== null && !(Date.parse(e.time) >= cutoff)) return false;
    return true;
  };
}

/** The query string parts of a filter that `GET /api/v1/requests` applies itself. */
export function serverSideParams({ server = '', tool = '', status = '', since = '' } = {}) {
  const p = {};
  if (server) p.server = server;
  if (tool) p.tool = tool;
  // "error" spans several outcomes: filtered here, not by the API.
  if (status && status !== 'error') p.status = status;
  if (since) p.since = since;
  return p;
}

/**
 * The request log as the dashboard holds it: entries by ascending id, at most `capacity`
 * (the oldest dropped first), merged from overlapping pages without duplicates. Adding a
 * page costs its length (plus an occasional compaction), never the log's.
 */
export class LogStore {
  constructor(capacity = 20000) {
    this.capacity = capacity;
    this.entries = [];
    this.start = 0; // entries before this index were dropped (compacted lazily)
    this.ids = new Set();
  }

  get length() {
    return this.entries.length - this.start;
  }

  /** Entry `i` counted from the newest (0) back. */
  newest(i) {
    return this.entries[this.entries.length - 1 - i];
  }

  get maxId() {
    return this.length ? this.entries[this.entries.length - 1].id : 0;
  }

  /** All entries, oldest first. */
  all() {
    return this.entries.slice(this.start);
  }

  find(id) {
    const n = Number(id);
    for (let i = this.entries.length - 1; i >= this.start; i--) if (this.entries[i].id === n) return this.entries[i];
    return undefined;
  }

  /** Adds entries (any order); returns those that were new, oldest first. */
  add(list) {
    const fresh = (list || []).filter((e) => e && typeof e.id === 'number' && !this.ids.has(e.id));
    if (!fresh.length) return [];
    fresh.sort((a, b) => a.id - b.id);
    const max = this.maxId;
    if (fresh[0].id > max) {
      for (const e of fresh) {
        this.entries.push(e);
        this.ids.add(e.id);
      }
    } else {
      // Older entries than some held (a first page arriving after a poll): rebuild once.
      for (const e of fresh) this.ids.add(e.id);
      const merged = this.entries.slice(this.start).concat(fresh).sort((a, b) => a.id - b.id);
      this.entries = merged;
      this.start = 0;
    }
    this.trim();
    return fresh;
  }

  trim() {
    while (this.length > this.capacity) {
      this.ids.delete(this.entries[this.start].id);
      this.entries[this.start] = undefined;
      this.start++;
    }
    if (this.start > 4096 && this.start > this.entries.length / 2) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  clear() {
    this.entries = [];
    this.start = 0;
    this.ids.clear();
  }
}

/** The rows a scrolled list shows: `[first, last)` for `count` rows of `rowHeight` px. */
export function visibleRange(scrollTop, viewport, rowHeight, count, overscan = 8) {
  if (count <= 0 || rowHeight <= 0) return [0, 0];
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  return [first, Math.max(first, last)];
}
