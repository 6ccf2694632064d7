// Tools: every tool the caller may use, searchable by name, description, server and tag;
// a tool's page with its schema and a try-it form generated from that schema.

import { h, replace, empty, errorBox, card, pre, select } from './dom.js';
import { api, ApiError } from './api.js';
import { href } from './route.js';
import { json } from './format.js';
import { filterTools } from './search.js';
import { virtualList } from './virtual-list.js';
import { buildModel, initialValues, collectArguments, valuesFromJson, needsRawEditor } from './schema-form.js';
import { renderForm } from './form-view.js';
import { renderResult, renderCallError } from './result-view.js';

export function mountList(ctx) {
  const { el, query } = ctx;
  const search = h('input', {
    type: 'search',
    id: 'tool-search',
    class: 'search',
    placeholder: 'Search tools by name, description, server or tag…',
    'aria-label': 'Search tools',
    value: query.q ?? '',
  });
  const serverSel = select([['', 'All servers']], '', { 'aria-label': 'Server', id: 'tool-server' });
  const tagSel = select([['', 'All tags']], '', { 'aria-label': 'Tag', id: 'tool-tag' });
  const count = h('span', { class: 'muted small', id: 'tool-count' });
  const body = h('div', { class: 'list-host' });
  el.append(h('div', { class: 'page-head' }, h('h1', null, 'Tools'), count), h('div', { class: 'toolbar' }, search, serverSel, tagSel), body);

  let tools = [];
  let tags = new Map();
  let shown = [];
  let loaded = false;
  let sig = '';
  const list = virtualList({
    count: () => shown.length,
    label: 'Tools',
    cls: 'tool-list',
    renderRow: (i) => {
      const t = shown[i];
      return h(
        'a',
        { class: 'vrow tool-row', href: href('tool', { server: t.server, tool: t.name }), role: 'listitem', dataset: { tool: t.qualifiedName || t.name } },
        h('div', { class: 'tool-row-top' }, h('span', { class: 'tool-name' }, t.name), h('span', { class: 'tag tag-server' }, t.server), t.annotations?.readOnlyHint ? h('span', { class: 'tag' }, 'read-only') : null, t.annotations?.destructiveHint ? h('span', { class: 'tag tag-warn' }, 'destructive') : null),
        h('div', { class: 'tool-desc muted small' }, (t.description || '').split('\n')[0] || 'No description.'),
      );
    },
  });
  ctx.onLeave(() => list.destroy());

  const draw = () => {
    shown = filterTools(tools, { q: search.value, server: serverSel.value, tag: tagSel.value }, (sv) => tags.get(sv));
    count.textContent = shown.length === tools.length ? `${tools.length} tools` : `${shown.length} of ${tools.length} tools`;
    if (!loaded) return;
    if (!tools.length) {
      replace(body, empty('No tools', 'No server offers a tool you may call. Check the ', h('a', { href: '#/servers' }, 'servers'), ' (a server still starting lists none), or the access rules of your credential.'));
      return;
    }
    if (!shown.length) {
      replace(body, empty('No tool matches', 'Try fewer words, or clear the server and tag filters.'));
      return;
    }
    if (list.el.parentNode !== body) replace(body, list.el);
    list.refresh();
  };
  const onFilter = () => {
    ctx.setQuery({ q: search.value, server: serverSel.value, tag: tagSel.value });
    list.scrollToTop();
    draw();
  };
  search.addEventListener('input', onFilter);
  serverSel.addEventListener('change', onFilter);
  tagSel.addEventListener('change', onFilter);
  search.focus();

  ctx.poll(async () => {
    let tv;
    let sv;
    try {
      [tv, sv] = await Promise.all([api('/api/v1/tools'), api('/api/v1/servers')]);
    } catch (e) {
      if (ctx.alive) replace(body, errorBox(e, 'list the tools'));
      throw e;
    }
    if (!ctx.alive) return;
    const next = tv.tools || [];
    const nextSig = `${next.length}:${next.map((t) => t.qualifiedName).join(',')}`;
    tags = new Map((sv.servers || []).map((x) => [x.id, x.tags || []]));
    const servers = [...new Set(next.map((t) => t.server))].sort();
    const allTags = [...new Set([...tags.values()].flat())].sort();
    const keep = (sel, opts, first, wanted) => {
      const v = wanted ?? sel.value;
      replace(sel, h('option', { value: '' }, first), opts.map((o) => h('option', { value: o }, o)));
      sel.value = opts.includes(v) ? v : '';
    };
    keep(serverSel, servers, 'All servers', loaded ? undefined : query.server);
    keep(tagSel, allTags, 'All tags', loaded ? undefined : query.tag);
    if (nextSig === sig && loaded) return;
    sig = nextSig;
    tools = next;
    loaded = true;
    draw();
  }, 10_000);
}

export function mountDetail(ctx) {
  const { el, params } = ctx;
  ctx.setTitle(params.tool);
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  el.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/tools' }, 'Tools'), ' / ', h('a', { href: href('server', { id: params.server }) }, params.server), ' / ', params.tool),
    body,
  );
  (async () => {
    let tv;
    try {
      tv = await api(`/api/v1/tools?server=${encodeURIComponent(params.server)}`);
    } catch (e) {
      if (!ctx.alive) return;
      if (e instanceof ApiError && e.status === 404) {
        replace(body, empty('No such server', `The gateway has no server "${params.server}". `, h('a', { href: '#/tools' }, 'See all tools'), '.'));
      } else replace(body, errorBox(e, 'read this tool'));
      return;
    }
    if (!ctx.alive) return;
    const tool = (tv.tools || []).find((t) => t.name === params.tool) || (tv.tools || []).find((t) => t.qualifiedName === params.tool);
    if (!tool) {
      replace(body, empty('No such tool', `Server "${params.server}" offers no tool "${params.tool}" that you may call. `, h('a', { href: '#/tools' }, 'See all tools'), '.'));
      return;
    }
    replace(body, toolView(ctx, tool));
  })();
}

function toolView(ctx, tool) {
  const ann = tool.annotations || {};
  const hints = [
    ann.readOnlyHint && 'read-only',
    ann.destructiveHint && 'destructive',
    ann.idempotentHint && 'idempotent',
    ann.openWorldHint && 'open world',
  ].filter(Boolean);
  const head = h(
    'div',
    { class: 'page-head' },
    h('h1', null, tool.name),
    h('span', { class: 'tag tag-server' }, tool.server),
    hints.map((x) => h('span', { class: ['tag', x === 'destructive' && 'tag-warn'] }, x)),
  );
  const info = h(
    'div',
    { class: 'tool-info' },
    tool.title || ann.title ? h('p', { class: 'strong' }, tool.title || ann.title) : null,
    h('p', { class: 'description' }, tool.description || 'No description.'),
    h('p', { class: 'muted small' }, 'Called as ', h('code', null, tool.qualifiedName || tool.name), ' through /mcp and the REST API.'),
  );
  const schemaCard = card('Input schema', pre(json(tool.inputSchema ?? {})), { cls: 'schema-card' });
  const outCard = tool.outputSchema ? card('Output schema', pre(json(tool.outputSchema)), { cls: 'schema-card' }) : null;
  return h('div', null, head, info, h('div', { class: 'grid grid-2 tool-grid' }, tryIt(ctx, tool), h('div', null, schemaCard, outCard)));
}

/** The try-it panel: a form from the input schema, or raw JSON; the call and its result. */
function tryIt(ctx, tool) {
  const model = buildModel(tool.inputSchema || {});
  let values = initialValues(model);
  let mode = needsRawEditor(model) ? 'json' : 'form';
  const formHost = h('div', { class: 'form-host' });
  const jsonArea = h('textarea', { class: 'mono json-editor', id: 'args-json', rows: 10, spellcheck: 'false', 'aria-label': 'Arguments as JSON' });
  const jsonNote = h('p', { class: 'field-error', hidden: true, role: 'alert' });
  const jsonHost = h('div', { class: 'json-host' }, jsonArea, jsonNote);
  const result = h('div', { class: 'result-host', id: 'call-result', 'aria-live': 'polite' });
  let form = null;

  const drawForm = () => {
    form = renderForm(model, values);
    replace(formHost, form.el);
  };
  const seg = (m, label) => h('button', { type: 'button', role: 'radio', class: 'seg', dataset: { mode: m }, 'aria-checked': String(mode === m), onclick: () => setMode(m) }, label);
  const modes = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Editor' }, seg('form', 'Form'), seg('json', 'JSON'));
  const setMode = (m) => {
    if (m === mode) return;
    if (m === 'json') {
      const { value } = collectArguments(model, values);
      jsonArea.value = json(value ?? {});
    } else {
      let parsed;
      try {
        parsed = JSON.parse(jsonArea.value || '{}');
      } catch (e) {
        jsonNote.textContent = `Not valid JSON (${e.message}); fix it to switch back to the form.`;
        jsonNote.hidden = false;
        return;
      }
      const back = valuesFromJson(model, parsed);
      if (back.lossy) {
        jsonNote.textContent = 'The form cannot hold all of these arguments (keys or types the schema does not describe); keep editing them as JSON.';
        jsonNote.hidden = false;
        return;
      }
      values = back.values;
      drawForm();
    }
    jsonNote.hidden = true;
    mode = m;
    for (const b of modes.children) b.setAttribute('aria-checked', String(b.dataset.mode === mode));
    formHost.hidden = mode !== 'form';
    jsonHost.hidden = mode !== 'json';
  };
  drawForm();
  if (mode === 'json') jsonArea.value = json(collectArguments(model, values).value ?? {});
  formHost.hidden = mode !== 'form';
  jsonHost.hidden = mode !== 'json';
  if (needsRawEditor(model)) modes.hidden = true;

  const callBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'call-tool' }, 'Call tool');
  const resetBtn = h('button', {
    type: 'button',
    class: 'btn btn-ghost',
    onclick: () => {
      values = initialValues(model);
      drawForm();
      jsonArea.value = json(collectArguments(model, values).value ?? {});
      replace(result);
    },
  }, 'Reset');
  const formEl = h(
    'form',
    { class: 'try-form', id: 'try-form', novalidate: true },
    h('div', { class: 'card-head' }, h('h2', null, 'Try it'), modes),
    formHost,
    jsonHost,
    h('div', { class: 'actions' }, callBtn, resetBtn, h('span', { class: 'muted small' }, 'Ctrl+Enter calls')),
    result,
  );
  formEl.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      formEl.requestSubmit();
    }
  });
  formEl.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let args;
    if (mode === 'form') {
      const { value, errors } = collectArguments(model, values);
      form.showErrors(errors);
      if (errors.length) return;
      args = value ?? {};
    } else {
      try {
        args = JSON.parse(jsonArea.value || '{}');
      } catch (e) {
        jsonNote.textContent = `Not valid JSON: ${e.message}`;
        jsonNote.hidden = false;
        return;
      }
      if (args === null || typeof args !== 'object' || Array.isArray(args)) {
        jsonNote.textContent = 'The arguments must be a JSON object ({ … }).';
        jsonNote.hidden = false;
        return;
      }
      jsonNote.hidden = true;
    }
    callBtn.disabled = true;
    callBtn.textContent = 'Calling…';
    const t0 = performance.now();
    try {
      const answer = await api('/api/v1/tools/call', { method: 'POST', body: { tool: tool.name, server: tool.server, arguments: args } });
      if (!ctx.alive) return;
      replace(result, renderResult(answer, { ms: performance.now() - t0 }), sentNote(tool, args));
    } catch (e) {
      if (!ctx.alive || (e instanceof ApiError && e.status === 401)) return;
      replace(result, renderCallError(e), sentNote(tool, args));
    } finally {
      callBtn.disabled = false;
      callBtn.textContent = 'Call tool';
    }
  });
  return h('section', { class: 'card try-card' }, formEl);
}

function sentNote(tool, args) {
  return h(
    'details',
    { class: 'raw' },
    h('summary', null, 'Arguments sent'),
    h('pre', { class: 'pre', id: 'args-sent' }, json(args)),
    h('p', { class: 'small' }, h('a', { href: href('requests', {}, { server: tool.server }) }, 'See this call in the request log →')),
  );
}
