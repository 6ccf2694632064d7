// Building the DOM. Text from the gateway (names, descriptions, results: all of it may come
// from an untrusted MCP server) only ever becomes text nodes or attribute values; nothing
// here parses HTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, child) {
  if (child === null || child === undefined || child === false || child === true) return;
  if (Array.isArray(child)) {
    for (const c of child) append(el, c);
  } else if (child instanceof Node) {
    el.appendChild(child);
  } else {
    el.appendChild(document.createTextNode(String(child)));
  }
}

function apply(el, props) {
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'href') {
      // Links go to the dashboard's own routes only.
      if (!String(v).startsWith('#')) throw new Error(`refusing link ${v}`);
      el.setAttribute('href', v);
    } else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = Boolean(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** `h('div', {class: 'x', onclick}, 'text', child, [more])`: an element. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status pill: `healthy`, `degraded`, `unhealthy`, an outcome, ... */
export function pill(word, extra = '') {
  const w = String(word ?? 'unknown');
  return h('span', { class: ['pill', `pill-${w.replace(/[^a-z0-9_-]/gi, '')}`, extra] }, w.replace(/_/g, ' '));
}

/** An empty state: what is missing and what to do. */
export function empty(title, ...what) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), what.length ? h('p', { class: 'empty-what' }, ...what) : null);
}

/** An error box for a failed API call, saying what to do where it can. */
export function errorBox(err, doing = '') {
  const status = err?.status;
  let advice = '';
  if (status === 0) advice = 'The gateway did not answer. Is it running, and is this the right address?';
  else if (status === 403) advice = 'Your credential is valid but not allowed to see this (an admin role may be needed: auth.adminRoles).';
  else if (status === 429) advice = 'Rate limited: the dashboard retries on its own shortly.';
  else if (status >= 500) advice = "The gateway failed; its log says why.";
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('p', { class: 'error-title' }, doing ? `Could not ${doing}` : 'Something went wrong'),
    h('p', null, err?.message ?? String(err)),
    err?.code ? h('p', { class: 'muted small' }, `${status ? `HTTP ${status} · ` : ''}${err.code}`) : null,
    advice ? h('p', { class: 'muted small' }, advice) : null,
  );
}

/** A definition list of `[label, value]` pairs (values are nodes or text; empty ones skipped). */
export function facts(pairs, cls = '') {
  const dl = h('dl', { class: ['facts', cls] });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === '') continue;
    dl.append(h('dt', null, k), h('dd', null, v));
  }
  return dl;
}

/** A card with a title row and a body. */
export function card(title, body, { actions = null, cls = '' } = {}) {
  return h(
    'section',
    { class: ['card', cls] },
    title || actions ? h('div', { class: 'card-head' }, title ? h('h2', null, title) : null, actions) : null,
    body,
  );
}

/** A `<select>` of `[value, label]` options. */
export function select(options, value, props = {}) {
  const el = h('select', props);
  for (const [v, label] of options) el.append(h('option', { value: v, selected: v === value }, label));
  el.value = value;
  return el;
}

/** Preformatted text (JSON, logs): text only. */
export function pre(text, cls = '') {
  return h('pre', { class: ['pre', cls] }, text);
}

/** Copies `text` to the clipboard, showing a short confirmation on `button`. */
export function copyButton(getText, label = 'Copy') {
  const b = h('button', { type: 'button', class: 'btn btn-small btn-ghost' }, label);
  b.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(getText());
      b.textContent = 'Copied';
    } catch {
      b.textContent = 'Copy failed';
    }
    setTimeout(() => (b.textContent = label), 1200);
  });
  return b;
}
