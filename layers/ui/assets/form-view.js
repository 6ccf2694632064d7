// The try-it form on the page: DOM for a field model of schema-form.js. The values tree is
// edited in place; `onChange` runs after every edit.

import { h, replace } from './dom.js';
import { emptyValue } from './schema-form.js';

let seq = 0;
const nextId = () => `f${++seq}`;

const KIND_LABEL = {
  string: 'string',
  number: 'number',
  integer: 'integer',
  boolean: 'boolean',
  enum: 'choice',
  array: 'list',
  object: 'object',
  json: 'JSON',
};

/**
 * Renders `model` (the root object) editing `values`. Returns `{ el, showErrors(errors) }`;
 * errors are schema-form's `{ path, message }`.
 */
export function renderForm(model, values, onChange = () => {}) {
  const slots = new Map();
  const root = h('div', { class: 'form' });
  if (model.kind === 'object' && !model.fields.length) {
    root.append(h('p', { class: 'muted' }, 'This tool takes no arguments.'));
  } else {
    root.append(fieldsOf(model, values, '', slots, onChange));
  }
  return {
    el: root,
    showErrors(errors) {
      for (const slot of slots.values()) {
        slot.textContent = '';
        slot.hidden = true;
        slot.closest('.field')?.classList.remove('invalid');
      }
      let first = null;
      for (const e of errors) {
        // An error of a field not on screen (a removed row) goes to the nearest parent.
        let path = e.path;
        while (path && !slots.get(path)?.isConnected) path = parentPath(path);
        const slot = slots.get(path);
        if (!slot) continue;
        const text = path === e.path ? e.message : `${e.path}: ${e.message}`;
        slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
        slot.hidden = false;
        slot.closest('.field')?.classList.add('invalid');
        first ??= slot;
      }
      first?.closest('.field')?.querySelector('input, select, textarea')?.focus();
    },
  };
}

function parentPath(path) {
  const m = path.match(/^(.*?)(\.[^.[\]]+|\[\d+\])$/);
  return m ? m[1] : '';
}

function pathJoin(path, name) {
  if (typeof name === 'number') return `${path}[${name}]`;
  return path ? `${path}.${name}` : name;
}

function fieldsOf(model, values, path, slots, onChange) {
  const box = h('div', { class: 'fields' });
  for (const f of model.fields) {
    box.append(field(f, values, f.name, pathJoin(path, f.name), slots, onChange));
  }
  // The root's own errors (or those of removed rows) land here.
  if (!slots.has(path)) {
    const slot = h('p', { class: 'field-error', hidden: true, role: 'alert' });
    slots.set(path, slot);
    box.append(slot);
  }
  return box;
}

/** One field editing `container[key]`. */
function field(model, container, key, path, slots, onChange) {
  const id = nextId();
  const errorSlot = h('p', { class: 'field-error', hidden: true, role: 'alert', id: `${id}-err` });
  slots.set(path, errorSlot);
  const set = (v) => {
    container[key] = v;
    onChange();
  };
  const item = typeof key === 'number';
  const scalarItem = item && model.kind !== 'object' && model.kind !== 'array';
  const head = scalarItem ? null : h(
    'div',
    { class: 'field-head' },
    item ? h('span', { class: 'field-name muted' }, `#${key + 1}`) : null,
    model.name === null
      ? null
      : h('label', { for: id, class: 'field-name' }, model.label, model.required ? h('span', { class: 'req', title: 'required' }, ' *') : null),
    item ? null : h('span', { class: 'field-type' }, KIND_LABEL[model.kind] + (model.kind === 'array' ? ` of ${KIND_LABEL[model.item.kind]}` : '')),
    model.title && model.title !== model.label ? h('span', { class: 'field-title muted' }, model.title) : null,
  );
  const desc = model.description ? h('p', { class: 'field-desc' }, model.description) : null;
  const wrap = (control, cls = '') =>
    h('div', { class: ['field', `field-${model.kind}`, model.required && 'required', cls] }, head, desc, control, errorSlot);
  const describedBy = `${id}-err`;

  switch (model.kind) {
    case 'string': {
      const long = (model.maxLength ?? 0) > 200 || /^(text|content|body|prompt|message|query|code|script|markdown)$/i.test(model.name ?? '');
      const input = long
        ? h('textarea', { id, rows: 2, 'aria-describedby': describedBy })
        : h('input', { id, type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': describedBy });
      input.value = container[key] ?? '';
      const hints = [model.format, model.pattern && `pattern ${model.pattern}`, model.maxLength !== undefined && `≤ ${model.maxLength} chars`].filter(Boolean);
      if (hints.length) input.setAttribute('placeholder', hints.join(' · '));
      if (model.required) input.setAttribute('aria-required', 'true');
      input.addEventListener('input', () => set(input.value));
      return wrap(input);
    }
    case 'number':
    case 'integer': {
      const input = h('input', {
        id,
        type: 'text',
        inputmode: model.kind === 'integer' ? 'numeric' : 'decimal',
        autocomplete: 'off',
        'aria-describedby': describedBy,
      });
      input.value = container[key] ?? '';
      const range = [
        model.minimum !== undefined && `≥ ${model.minimum}`,
        model.exclusiveMinimum !== undefined && `> ${model.exclusiveMinimum}`,
        model.maximum !== undefined && `≤ ${model.maximum}`,
        model.exclusiveMaximum !== undefined && `< ${model.exclusiveMaximum}`,
      ].filter(Boolean);
      input.setAttribute('placeholder', range.length ? range.join(', ') : model.kind);
      if (model.required) input.setAttribute('aria-required', 'true');
      input.addEventListener('input', () => set(input.value));
      return wrap(input);
    }
    case 'boolean': {
      if (model.required) {
        if (container[key] !== true) container[key] = false;
        const input = h('input', { id, type: 'checkbox', checked: container[key] === true, 'aria-describedby': describedBy });
        input.addEventListener('change', () => set(input.checked));
        return wrap(h('label', { class: 'check' }, input, h('span', null, 'true')));
      }
      const sel = h('select', { id, 'aria-describedby': describedBy });
      for (const [v, label] of [['', '— not set —'], ['true', 'true'], ['false', 'false']]) sel.append(h('option', { value: v }, label));
      sel.value = container[key] === true ? 'true' : container[key] === false ? 'false' : '';
      sel.addEventListener('change', () => set(sel.value === '' ? null : sel.value === 'true'));
      return wrap(sel);
    }
    case 'enum': {
      const sel = h('select', { id, 'aria-describedby': describedBy });
      sel.append(h('option', { value: '-1' }, model.required ? '— choose —' : '— not set —'));
      model.options.forEach((o, i) => sel.append(h('option', { value: String(i) }, o.label)));
      sel.value = String(container[key] ?? -1);
      if (model.required) sel.setAttribute('aria-required', 'true');
      sel.addEventListener('change', () => set(Number(sel.value)));
      return wrap(sel);
    }
    case 'json': {
      const ta = h('textarea', { id, rows: 3, class: 'mono', spellcheck: 'false', placeholder: 'a JSON value', 'aria-describedby': describedBy });
      ta.value = container[key] ?? '';
      ta.addEventListener('input', () => set(ta.value));
      return wrap(h('div', null, ta, h('p', { class: 'muted small' }, `Edited as JSON (${model.reason || 'not expressible as a form'}).`)));
    }
    case 'object': {
      if (!container[key] || typeof container[key] !== 'object') container[key] = emptyValue(model);
      return wrap(h('div', { class: 'nested' }, fieldsOf(model, container[key], path, slots, onChange)));
    }
    case 'array': {
      if (!Array.isArray(container[key])) container[key] = [];
      const list = h('div', { class: 'array-items' });
      const draw = () => {
        const items = container[key];
        replace(
          list,
          items.map((_, i) =>
            h(
              'div',
              { class: 'array-item' },
              h('div', { class: 'array-item-body' }, field(model.item, items, i, pathJoin(path, i), slots, onChange)),
              h('button', {
                type: 'button',
                class: 'btn btn-small btn-ghost',
                title: 'Remove this item',
                'aria-label': `Remove item ${i + 1}`,
                onclick: () => {
                  items.splice(i, 1);
                  draw();
                  onChange();
                },
              }, '✕'),
            ),
          ),
          items.length ? null : h('p', { class: 'muted small' }, 'No items.'),
        );
      };
      draw();
      const add = h('button', {
        type: 'button',
        class: 'btn btn-small add-item',
        id,
        onclick: () => {
          container[key].push(emptyValue(model.item));
          draw();
          onChange();
          list.lastElementChild?.querySelector('input, select, textarea')?.focus();
        },
      }, '+ Add item');
      return wrap(h('div', { class: 'nested' }, list, add));
    }
    default:
      return wrap(h('p', { class: 'muted' }, 'Unsupported field.'));
  }
}
