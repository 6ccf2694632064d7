// Form generation from a tool's JSON Schema (`inputSchema`), without the DOM.
//
// buildModel(schema)            -> a field model: one node per field, with its kind
//                                  (string, number, integer, boolean, enum, array, object, json)
// initialValues(model)          -> the form's values, from the schema's defaults
// collectArguments(model, vals) -> { value, errors }: the tool's `arguments` object
// valuesFromJson(model, json)   -> { values, lossy }: form values from arguments (the raw
//                                  JSON editor switching back to the form)
//
// Values are kept as the user typed them (numbers as text) and converted only by
// collectArguments, so a half-typed "1." is not lost. What the form cannot express
// (oneOf / anyOf alternatives, tuples, free-form objects, recursion past MAX_DEPTH) becomes
// a `json` field: a small raw JSON editor for that value alone.

const MAX_DEPTH = 8;

const has = (o, k) => o != null && Object.prototype.hasOwnProperty.call(o, k);
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Follows a local `$ref` (`#/$defs/X`, `#/definitions/X`, any JSON pointer into the root). */
function resolveRef(root, ref) {
  if (typeof ref !== 'string' || !ref.startsWith('#')) return undefined;
  const parts = ref.slice(1).split('/').filter((p) => p !== '');
  let cur = root;
  for (const raw of parts) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObj(cur) && !Array.isArray(cur)) return undefined;
    cur = cur[key];
  }
  return isObj(cur) ? cur : undefined;
}

/** The schema with `$ref` and single-element `allOf` folded in; `null` when a ref is unknown. */
function normalize(schema, root, depth) {
  let s = isObj(schema) ? schema : {};
  for (let hops = 0; has(s, '$ref') && hops < MAX_DEPTH; hops++) {
    const target = resolveRef(root, s.$ref);
    if (!target) return null;
    const { $ref, ...rest } = s;
    s = { ...target, ...rest };
  }
  if (has(s, '$ref')) return null;
  if (Array.isArray(s.allOf) && depth < MAX_DEPTH) {
    const parts = s.allOf.map((p) => normalize(p, root, depth + 1));
    if (parts.some((p) => p === null)) return null;
    const { allOf, ...rest } = s;
    let merged = { ...rest };
    for (const p of parts) {
      const props = { ...(merged.properties || {}), ...(p.properties || {}) };
      const required = [...new Set([...(merged.required || []), ...(p.required || [])])];
      merged = { ...p, ...merged, properties: props, required };
      if (!Object.keys(props).length) delete merged.properties;
      if (!required.length) delete merged.required;
    }
    s = merged;
  }
  return s;
}

function describe(s) {
  return typeof s.description === 'string' ? s.description : '';
}

/** The non-null type of a schema, and whether null is allowed too. */
function typeOf(s) {
  let t = s.type;
  let nullable = false;
  if (Array.isArray(t)) {
    nullable = t.includes('null');
    t = t.filter((x) => x !== 'null');
    if (t.length === 1) t = t[0];
    else if (t.length === 0) t = 'null';
    else return { type: 'mixed', nullable };
  }
  if (t === undefined) {
    if (has(s, 'properties')) t = 'object';
    else if (has(s, 'items')) t = 'array';
  }
  return { type: t, nullable };
}

function optionLabel(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/**
 * The field model of `schema`. `name` and `required` describe the field within its parent
 * (the root has neither). `root` is the document `$ref`s resolve against.
 */
export function buildModel(schema, { name = null, required = false, root = schema, depth = 0, parentDefault } = {}) {
  const base = { name, required, label: name ?? '', description: '', nullable: false };
  if (depth > MAX_DEPTH) return { ...base, kind: 'json', reason: 'nested too deeply for a form', schema };
  const s = normalize(schema, root, depth);
  if (s === null) return { ...base, kind: 'json', reason: 'a reference the form cannot follow', schema };
  const node = {
    ...base,
    label: name ?? (typeof s.title === 'string' ? s.title : ''),
    title: typeof s.title === 'string' ? s.title : '',
    description: describe(s),
    schema: s,
  };
  if (has(s, 'default')) node.default = s.default;
  else if (parentDefault !== undefined) node.default = parentDefault;
  if (s.deprecated === true) node.deprecated = true;
  if (s.readOnly === true) node.readOnly = true;

  // Alternatives: the Optional pattern (X or null) and enumerations of constants are kept;
  // anything else is edited as raw JSON.
  const alts = Array.isArray(s.oneOf) ? s.oneOf : Array.isArray(s.anyOf) ? s.anyOf : null;
  if (alts) {
    const which = Array.isArray(s.oneOf) ? 'oneOf' : 'anyOf';
    const resolved = alts.map((a) => normalize(a, root, depth + 1));
    if (resolved.some((a) => a === null)) return { ...node, kind: 'json', reason: which };
    const nonNull = resolved.filter((a) => !(a.type === 'null' || (has(a, 'const') && a.const === null)));
    const nullable = nonNull.length < resolved.length;
    if (nonNull.length && nonNull.every((a) => has(a, 'const') || (Array.isArray(a.enum) && a.enum.length === 1))) {
      const options = nonNull.map((a) => {
        const value = has(a, 'const') ? a.const : a.enum[0];
        return { value, label: typeof a.title === 'string' && a.title ? a.title : optionLabel(value) };
      });
      return { ...node, kind: 'enum', options, nullable };
    }
    if (nonNull.length === 1) {
      const { oneOf, anyOf, ...outer } = s;
      const inner = buildModel({ ...nonNull[0], ...pick(outer, ['title', 'description', 'default']) }, {
        name, required, root, depth: depth + 1, parentDefault,
      });
      return { ...inner, nullable: true };
    }
    return { ...node, kind: 'json', reason: which };
  }

  if (Array.isArray(s.enum) && s.enum.length) {
    const titles = Array.isArray(s.enumNames) ? s.enumNames : [];
    const options = s.enum.filter((v) => v !== null).map((value, i) => ({
      value,
      label: typeof titles[i] === 'string' ? titles[i] : optionLabel(value),
    }));
    return { ...node, kind: 'enum', options, nullable: s.enum.includes(null) || typeOf(s).nullable };
  }
  if (has(s, 'const')) {
    return { ...node, kind: 'enum', options: [{ value: s.const, label: optionLabel(s.const) }] };
  }

  let { type, nullable } = typeOf(s);
  // A tool's input is an object: a root schema without a type (or none at all) means one
  // with no declared fields.
  if (type === undefined && depth === 0 && name === null) type = 'object';
  node.nullable = nullable;
  switch (type) {
    case 'string':
      return {
        ...node,
        kind: 'string',
        format: typeof s.format === 'string' ? s.format : undefined,
        minLength: num(s.minLength),
        maxLength: num(s.maxLength),
        pattern: typeof s.pattern === 'string' ? s.pattern : undefined,
      };
    case 'number':
    case 'integer':
      return {
        ...node,
        kind: type,
        minimum: num(s.minimum),
        maximum: num(s.maximum),
        exclusiveMinimum: num(s.exclusiveMinimum),
        exclusiveMaximum: num(s.exclusiveMaximum),
      };
    case 'boolean':
      return { ...node, kind: 'boolean' };
    case 'array': {
      if (!isObj(s.items) || Array.isArray(s.prefixItems)) {
        return { ...node, kind: 'json', reason: Array.isArray(s.items) || s.prefixItems ? 'a tuple' : 'an array of anything' };
      }
      const item = buildModel(s.items, { name: null, required: true, root, depth: depth + 1 });
      return { ...node, kind: 'array', item, minItems: num(s.minItems), maxItems: num(s.maxItems) };
    }
    case 'object': {
      const props = isObj(s.properties) ? s.properties : {};
      const req = new Set(Array.isArray(s.required) ? s.required : []);
      const names = Object.keys(props);
      if (!names.length && s.additionalProperties !== false && depth > 0) {
        return { ...node, kind: 'json', reason: 'an object with free-form keys' };
      }
      const dflt = isObj(node.default) ? node.default : undefined;
      const fields = names.map((k) =>
        buildModel(props[k], { name: k, required: req.has(k), root, depth: depth + 1, parentDefault: dflt?.[k] }),
      );
      // Required fields first, in schema order otherwise.
      fields.sort((a, b) => Number(b.required) - Number(a.required));
      return { ...node, kind: 'object', fields, additional: s.additionalProperties !== false && !names.length };
    }
    default:
      return { ...node, kind: 'json', reason: type === 'mixed' ? 'several types' : 'no type' };
  }
}

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function pick(o, keys) {
  const out = {};
  for (const k of keys) if (has(o, k)) out[k] = o[k];
  return out;
}

/** The form's starting values: the schema's defaults, else empty. */
export function initialValues(model) {
  return valueFor(model, model.default);
}

function valueFor(model, v) {
  switch (model.kind) {
    case 'string':
      return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
    case 'number':
    case 'integer':
      return typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'enum': {
      if (v === undefined) return -1;
      const key = JSON.stringify(v);
      return model.options.findIndex((o) => JSON.stringify(o.value) === key);
    }
    case 'array':
      return Array.isArray(v) ? v.map((x) => valueFor(model.item, x)) : [];
    case 'object': {
      const src = isObj(v) ? v : {};
      const out = {};
      for (const f of model.fields) out[f.name] = valueFor(f, has(src, f.name) ? src[f.name] : f.default);
      return out;
    }
    case 'json':
      return v === undefined ? '' : JSON.stringify(v, null, 2);
    default:
      return undefined;
  }
}

/** An empty value of `model` (what a new array item starts as). */
export function emptyValue(model) {
  return valueFor(model, model.default);
}

/** True when the user left the value empty. */
export function isEmpty(model, v) {
  switch (model.kind) {
    case 'string':
      // Spaces are a value a string may want; only nothing at all is empty.
      return typeof v !== 'string' || v === '';
    case 'number':
    case 'integer':
    case 'json':
      return typeof v !== 'string' || v.trim() === '';
    case 'boolean':
      return v !== true && v !== false;
    case 'enum':
      return typeof v !== 'number' || v < 0;
    case 'array':
      return !Array.isArray(v) || v.length === 0;
    case 'object':
      return !isObj(v) || model.fields.every((f) => isEmpty(f, v[f.name]));
    default:
      return true;
  }
}

const SKIP = Symbol('skip');

/**
 * The `arguments` object of a call from the form's values, and what is wrong with them.
 * Optional fields left empty are left out; required ones are errors. Errors are
 * `{ path, message }`, `path` being the field's place (`a.b[2]`), empty for the root.
 */
export function collectArguments(model, values) {
  const errors = [];
  let value = convert(model, values, '', errors, true);
  if (value === SKIP) value = model.kind === 'object' ? {} : undefined;
  return { value, errors };
}

function join(path, name) {
  if (typeof name === 'number') return `${path}[${name}]`;
  return path ? `${path}.${name}` : name;
}

function convert(model, v, path, errors, present) {
  const empty = isEmpty(model, v);
  if (empty && model.kind !== 'object' && model.kind !== 'array') {
    if (model.required && present) errors.push({ path, message: 'required' });
    return SKIP;
  }
  switch (model.kind) {
    case 'string': {
      if (model.minLength !== undefined && v.length < model.minLength) {
        errors.push({ path, message: `at least ${model.minLength} characters` });
      }
      if (model.maxLength !== undefined && v.length > model.maxLength) {
        errors.push({ path, message: `at most ${model.maxLength} characters` });
      }
      return v;
    }
    case 'number':
    case 'integer': {
      const text = v.trim();
      const n = Number(text);
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) || !Number.isFinite(n)) {
        errors.push({ path, message: model.kind === 'integer' ? 'not an integer' : 'not a number' });
        return SKIP;
      }
      if (model.kind === 'integer' && !Number.isInteger(n)) {
        errors.push({ path, message: 'not an integer' });
        return SKIP;
      }
      if (model.minimum !== undefined && n < model.minimum) errors.push({ path, message: `at least ${model.minimum}` });
      if (model.maximum !== undefined && n > model.maximum) errors.push({ path, message: `at most ${model.maximum}` });
      if (model.exclusiveMinimum !== undefined && n <= model.exclusiveMinimum) {
        errors.push({ path, message: `more than ${model.exclusiveMinimum}` });
      }
      if (model.exclusiveMaximum !== undefined && n >= model.exclusiveMaximum) {
        errors.push({ path, message: `less than ${model.exclusiveMaximum}` });
      }
      return n;
    }
    case 'boolean':
      return v;
    case 'enum': {
      const opt = model.options[v];
      if (!opt) {
        errors.push({ path, message: 'not one of the choices' });
        return SKIP;
      }
      return opt.value;
    }
    case 'json': {
      try {
        return JSON.parse(v);
      } catch (e) {
        errors.push({ path, message: `not valid JSON (${e.message})` });
        return SKIP;
      }
    }
    case 'array': {
      const items = Array.isArray(v) ? v : [];
      if (!items.length) {
        if (!model.required) return SKIP;
      }
      const out = [];
      items.forEach((item, i) => {
        // An empty scalar row is a row the user added and did not fill: left out.
        if (model.item.kind !== 'object' && model.item.kind !== 'array' && isEmpty(model.item, item)) return;
        const x = convert(model.item, item, join(path, i), errors, true);
        if (x !== SKIP) out.push(x);
      });
      if (model.minItems !== undefined && out.length < model.minItems) {
        errors.push({ path, message: `at least ${model.minItems} item${model.minItems === 1 ? '' : 's'}` });
      }
      if (model.maxItems !== undefined && out.length > model.maxItems) {
        errors.push({ path, message: `at most ${model.maxItems} items` });
      }
      if (!out.length && !model.required) return SKIP;
      return out;
    }
    case 'object': {
      const src = isObj(v) ? v : {};
      // An optional nested object left wholly empty is left out, its own required fields
      // with it; the root object is always sent.
      if (path !== '' && !model.required && empty) return SKIP;
      const out = {};
      for (const f of model.fields) {
        const x = convert(f, src[f.name], join(path, f.name), errors, true);
        if (x !== SKIP) out[f.name] = x;
      }
      return out;
    }
    default:
      return SKIP;
  }
}

/**
 * Form values holding `json` (a call's arguments), for switching from the raw JSON editor
 * back to the form. `lossy` is true when the form cannot hold all of it (keys the schema
 * does not name, values of another type): the caller should stay in the JSON editor.
 */
export function valuesFromJson(model, json) {
  const state = { lossy: false };
  const values = fromJson(model, json, state);
  return { values, lossy: state.lossy };
}

function fromJson(model, v, state) {
  if (v === undefined) return emptyValue({ ...model, default: undefined });
  if (v === null) {
    if (!model.nullable) state.lossy = true;
    return emptyValue({ ...model, default: undefined });
  }
  switch (model.kind) {
    case 'string':
      if (typeof v !== 'string') state.lossy = true;
      return typeof v === 'string' ? v : JSON.stringify(v);
    case 'number':
    case 'integer':
      if (typeof v !== 'number' || (model.kind === 'integer' && !Number.isInteger(v))) {
        state.lossy = true;
        return '';
      }
      return String(v);
    case 'boolean':
      if (typeof v !== 'boolean') {
        state.lossy = true;
        return null;
      }
      return v;
    case 'enum': {
      const key = JSON.stringify(v);
      const i = model.options.findIndex((o) => JSON.stringify(o.value) === key);
      if (i < 0) state.lossy = true;
      return i;
    }
    case 'array':
      if (!Array.isArray(v)) {
        state.lossy = true;
        return [];
      }
      return v.map((x) => fromJson(model.item, x, state));
    case 'object': {
      if (!isObj(v)) {
        state.lossy = true;
        return fromJson(model, {}, state);
      }
      const known = new Set(model.fields.map((f) => f.name));
      if (Object.keys(v).some((k) => !known.has(k))) state.lossy = true;
      const out = {};
      for (const f of model.fields) out[f.name] = fromJson(f, v[f.name], state);
      return out;
    }
    case 'json':
      return JSON.stringify(v, null, 2);
    default:
      state.lossy = true;
      return undefined;
  }
}

/** True when the whole schema is better edited as raw JSON (the root is not an object). */
export function needsRawEditor(model) {
  return model.kind !== 'object';
}
