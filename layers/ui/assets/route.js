// Hash routes of the dashboard, without the DOM: `#/page/segments?query`.
//
//   #/overview                 #/servers             #/servers/<id>
//   #/tools                    #/tools/<server>/<tool>
//   #/requests                 #/requests/<id>       #/metrics
//
// Segments are percent-encoded (tool names may hold any character).

export const PAGES = ['overview', 'servers', 'tools', 'requests', 'metrics'];

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

/** `{ page, params, query }` of a location hash; unknown paths give page `notfound`. */
export function parseRoute(hash) {
  let h = String(hash || '').replace(/^#/, '');
  const qi = h.indexOf('?');
  const query = {};
  if (qi >= 0) {
    for (const [k, v] of new URLSearchParams(h.slice(qi + 1))) query[k] = v;
    h = h.slice(0, qi);
  }
  const raw = h.split('/').filter((s) => s !== '');
  const segs = raw.map(decode);
  if (segs.some((s) => s === null)) return { page: 'notfound', params: {}, query };
  const [head, ...rest] = segs;
  if (head === undefined) return { page: 'overview', params: {}, query };
  switch (head) {
    case 'overview':
    case 'metrics':
      if (rest.length === 0) return { page: head, params: {}, query };
      break;
    case 'servers':
      if (rest.length === 0) return { page: 'servers', params: {}, query };
      if (rest.length === 1) return { page: 'server', params: { id: rest[0] }, query };
      break;
    case 'tools':
      if (rest.length === 0) return { page: 'tools', params: {}, query };
      if (rest.length === 2) return { page: 'tool', params: { server: rest[0], tool: rest[1] }, query };
      break;
    case 'requests':
      if (rest.length === 0) return { page: 'requests', params: {}, query };
      if (rest.length === 1 && /^\d+$/.test(rest[0])) return { page: 'request', params: { id: rest[0] }, query };
      break;
    default:
  }
  return { page: 'notfound', params: {}, query };
}

/** The hash of a route: `href('tool', {server, tool})`, `href('requests', {}, {server: 'x'})`. */
export function href(page, params = {}, query = {}) {
  const e = encodeURIComponent;
  let path;
  switch (page) {
    case 'server':
      path = `servers/${e(params.id)}`;
      break;
    case 'tool':
      path = `tools/${e(params.server)}/${e(params.tool)}`;
      break;
    case 'request':
      path = `requests/${e(params.id)}`;
      break;
    default:
      path = page;
  }
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const qs = q.toString();
  return `#/${path}${qs ? `?${qs}` : ''}`;
}

/** The navigation entry a route belongs to (a detail page highlights its list). */
export function section(page) {
  return { server: 'servers', tool: 'tools', request: 'requests' }[page] || page;
}
