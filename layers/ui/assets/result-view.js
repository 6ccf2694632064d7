// A tool's result as the dashboard shows it: text, images, embedded resources, links,
// structured content and errors. Everything in a result comes from an MCP server and is
// shown as text; images only as `data:` URLs of raster types checked here.

import { h, pre, copyButton } from './dom.js';
import { json, bytes } from './format.js';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp', 'image/avif']);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The `data:` URL of an image content item, or null when its type or data is not acceptable. */
export function imageUrl(item) {
  const type = String(item?.mimeType || '').toLowerCase();
  const data = typeof item?.data === 'string' ? item.data.replace(/\s+/g, '') : '';
  if (!IMAGE_TYPES.has(type) || !data || !BASE64.test(data)) return null;
  return `data:${type};base64,${data}`;
}

function contentItem(item) {
  const type = item?.type;
  if (type === 'text') {
    return h('div', { class: 'content content-text' }, pre(String(item.text ?? '')));
  }
  if (type === 'image') {
    const url = imageUrl(item);
    if (!url) return h('div', { class: 'content' }, h('p', { class: 'muted' }, `An image of type ${item?.mimeType || 'unknown'} (not shown).`));
    const img = h('img', { class: 'content-image', alt: `image from the tool (${item.mimeType})` });
    img.src = url;
    return h('figure', { class: 'content' }, img, h('figcaption', { class: 'muted small' }, `${item.mimeType}, ${bytes(Math.floor((item.data.length * 3) / 4))}`));
  }
  if (type === 'audio') {
    const size = typeof item.data === 'string' ? bytes(Math.floor((item.data.length * 3) / 4)) : '?';
    return h('div', { class: 'content' }, h('p', { class: 'muted' }, `Audio (${item.mimeType || 'unknown type'}, ${size}); not played here.`));
  }
  if (type === 'resource' && item.resource) {
    const r = item.resource;
    return h(
      'div',
      { class: 'content content-resource' },
      h('p', { class: 'small' }, h('b', null, 'Resource '), h('code', null, String(r.uri ?? '')), r.mimeType ? h('span', { class: 'muted' }, ` ${r.mimeType}`) : null),
      typeof r.text === 'string' ? pre(r.text) : typeof r.blob === 'string' ? h('p', { class: 'muted small' }, `binary, ${bytes(Math.floor((r.blob.length * 3) / 4))}`) : null,
    );
  }
  if (type === 'resource_link') {
    return h(
      'div',
      { class: 'content content-resource' },
      h('p', { class: 'small' }, h('b', null, 'Link '), h('code', null, String(item.uri ?? '')), item.name ? ` ${item.name}` : ''),
      item.description ? h('p', { class: 'muted small' }, String(item.description)) : null,
    );
  }
  return h('div', { class: 'content' }, h('p', { class: 'muted small' }, `Content of type ${String(type)}:`), pre(json(item)));
}

/** The answer of `POST /api/v1/tools/call` (`{ server, tool, result }`). */
export function renderResult(answer, { ms } = {}) {
  const result = answer?.result ?? {};
  const isErr = result.isError === true;
  const content = Array.isArray(result.content) ? result.content : [];
  const head = h(
    'div',
    { class: ['result-head', isErr ? 'is-error' : 'is-ok'] },
    h('b', null, isErr ? 'The tool reported an error' : 'Result'),
    h('span', { class: 'muted small' }, ` from ${answer?.server ?? '?'}${ms !== undefined ? ` in ${Math.round(ms)} ms` : ''}`),
    copyButton(() => json(result), 'Copy JSON'),
  );
  const parts = [head];
  if (result.resultType && result.resultType !== 'complete') {
    parts.push(h('p', { class: 'muted small' }, `Result type: ${String(result.resultType)}`));
  }
  for (const item of content) parts.push(contentItem(item));
  if (!content.length && result.structuredContent === undefined) parts.push(h('p', { class: 'muted' }, 'The tool returned no content.'));
  if (result.structuredContent !== undefined) {
    parts.push(h('div', { class: 'content' }, h('p', { class: 'small' }, h('b', null, 'Structured content')), pre(json(result.structuredContent))));
  }
  parts.push(h('details', { class: 'raw' }, h('summary', null, 'Raw result'), pre(json(result))));
  return h('div', { class: ['result', isErr && 'result-error'], 'data-testid': 'result' }, parts);
}

/** A failed call (an ApiError from the gateway). */
export function renderCallError(err) {
  const upstream = err?.body?.error?.upstream;
  const servers = err?.body?.error?.servers;
  return h(
    'div',
    { class: 'result result-error', role: 'alert', 'data-testid': 'result' },
    h('div', { class: 'result-head is-error' }, h('b', null, 'The call failed'), h('span', { class: 'muted small' }, err?.status ? ` HTTP ${err.status} · ${err.code}` : '')),
    h('p', null, err?.message ?? String(err)),
    Array.isArray(servers) ? h('p', { class: 'muted small' }, `Offered by: ${servers.join(', ')}`) : null,
    upstream ? h('details', { class: 'raw', open: true }, h('summary', null, 'Error from the server'), pre(json(upstream))) : null,
  );
}
