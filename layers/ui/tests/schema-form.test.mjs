// The try-it form's model: JSON Schema -> fields -> arguments. Run: node --test layers/ui/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildModel,
  initialValues,
  collectArguments,
  valuesFromJson,
  emptyValue,
  needsRawEditor,
} from '../assets/schema-form.js';

const field = (model, name) => model.fields.find((f) => f.name === name);

test('strings, numbers, integers and booleans become typed fields', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      text: { type: 'string', description: 'What to say' },
      a: { type: 'number' },
      n: { type: 'integer', minimum: 0, maximum: 10 },
      loud: { type: 'boolean' },
    },
    required: ['text', 'a'],
  });
  assert.equal(m.kind, 'object');
  assert.deepEqual(
    m.fields.map((f) => [f.name, f.kind, f.required]),
    [
      ['text', 'string', true],
      ['a', 'number', true],
      ['n', 'integer', false],
      ['loud', 'boolean', false],
    ],
  );
  assert.equal(field(m, 'text').description, 'What to say');
  assert.equal(field(m, 'n').minimum, 0);
  assert.equal(field(m, 'n').maximum, 10);
  const v = initialValues(m);
  assert.deepEqual(v, { text: '', a: '', n: '', loud: null });
  v.text = 'hi';
  v.a = '2.5';
  v.n = '7';
  v.loud = false;
  assert.deepEqual(collectArguments(m, v), { value: { text: 'hi', a: 2.5, n: 7, loud: false }, errors: [] });
});

test('numbers are converted and checked', () => {
  const m = buildModel({
    type: 'object',
    properties: { a: { type: 'number' }, i: { type: 'integer', minimum: 1, exclusiveMaximum: 5 } },
    required: ['a'],
  });
  const run = (a, i) => collectArguments(m, { a, i });
  assert.deepEqual(run('-1e3', '').value, { a: -1000 });
  assert.deepEqual(run(' 0.5 ', '4').value, { a: 0.5, i: 4 });
  assert.deepEqual(run('abc', '').errors, [{ path: 'a', message: 'not a number' }]);
  assert.deepEqual(run('1', '2.5').errors, [{ path: 'i', message: 'not an integer' }]);
  assert.deepEqual(run('1', '0').errors, [{ path: 'i', message: 'at least 1' }]);
  assert.deepEqual(run('1', '5').errors, [{ path: 'i', message: 'less than 5' }]);
  assert.deepEqual(run('', '').errors, [{ path: 'a', message: 'required' }]);
  // "0x10" and "Infinity" are numbers to JavaScript, not to JSON.
  assert.equal(run('0x10', '').errors.length, 1);
  assert.equal(run('Infinity', '').errors.length, 1);
});

test('required markers: empty required fields are errors, empty optional ones are left out', () => {
  const m = buildModel({
    type: 'object',
    properties: { must: { type: 'string' }, may: { type: 'string' }, flag: { type: 'boolean' } },
    required: ['must', 'flag'],
  });
  const { value, errors } = collectArguments(m, initialValues(m));
  assert.deepEqual(value, {});
  assert.deepEqual(errors, [
    { path: 'must', message: 'required' },
    { path: 'flag', message: 'required' },
  ]);
  // A string of spaces is a value; nothing at all is not.
  assert.deepEqual(collectArguments(m, { must: ' ', may: '', flag: true }).value, { must: ' ', flag: true });
});

test('defaults fill the form and are sent', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      steps: { type: 'integer', default: 3 },
      mode: { type: 'string', enum: ['fast', 'slow'], default: 'slow' },
      on: { type: 'boolean', default: true },
      name: { type: 'string', default: 'x' },
      opts: { type: 'object', properties: { depth: { type: 'number' } }, default: { depth: 2 } },
      tags: { type: 'array', items: { type: 'string' }, default: ['a', 'b'] },
    },
  });
  const v = initialValues(m);
  assert.deepEqual(v, { steps: '3', mode: 1, on: true, name: 'x', opts: { depth: '2' }, tags: ['a', 'b'] });
  assert.deepEqual(collectArguments(m, v).value, {
    steps: 3,
    mode: 'slow',
    on: true,
    name: 'x',
    opts: { depth: 2 },
    tags: ['a', 'b'],
  });
});

test('enums keep their values typed, with titles as labels', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      color: { type: 'string', enum: ['red', 'green'] },
      level: { enum: [1, 2, 3] },
      titled: { oneOf: [{ const: 'a', title: 'Alpha' }, { const: 'b', title: 'Beta' }] },
      fixed: { const: 'only' },
    },
    required: ['color'],
  });
  assert.equal(field(m, 'color').kind, 'enum');
  assert.deepEqual(field(m, 'titled').options, [
    { value: 'a', label: 'Alpha' },
    { value: 'b', label: 'Beta' },
  ]);
  assert.deepEqual(field(m, 'level').options.map((o) => o.label), ['1', '2', '3']);
  const v = initialValues(m);
  assert.deepEqual(v, { color: -1, level: -1, titled: -1, fixed: -1 });
  assert.deepEqual(collectArguments(m, v).errors, [{ path: 'color', message: 'required' }]);
  assert.deepEqual(collectArguments(m, { color: 1, level: 2, titled: 0, fixed: 0 }).value, {
    color: 'green',
    level: 3,
    titled: 'a',
    fixed: 'only',
  });
});

test('arrays of scalars and of objects', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      nums: { type: 'array', items: { type: 'number' }, minItems: 1 },
      people: {
        type: 'array',
        items: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name'] },
      },
    },
    required: ['nums'],
  });
  const nums = field(m, 'nums');
  assert.equal(nums.kind, 'array');
  assert.equal(nums.item.kind, 'number');
  assert.equal(field(m, 'people').item.kind, 'object');
  const v = initialValues(m);
  assert.deepEqual(v, { nums: [], people: [] });
  assert.deepEqual(collectArguments(m, v).errors, [{ path: 'nums', message: 'at least 1 item' }]);
  v.nums.push('1', '', '2');
  v.people.push(emptyValue(field(m, 'people').item));
  v.people[0].name = 'Ada';
  v.people[0].age = '36';
  v.people.push({ name: '', age: '' });
  const { value, errors } = collectArguments(m, v);
  assert.deepEqual(value, { nums: [1, 2], people: [{ name: 'Ada', age: 36 }, {}] });
  assert.deepEqual(errors, [{ path: 'people[1].name', message: 'required' }]);
});

test('nested objects: required inside optional objects only when the object is given', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      server: {
        type: 'object',
        properties: { host: { type: 'string' }, port: { type: 'integer' } },
        required: ['host'],
      },
      auth: {
        type: 'object',
        properties: { user: { type: 'string' } },
        required: ['user'],
      },
    },
    required: ['auth'],
  });
  const v = initialValues(m);
  let r = collectArguments(m, v);
  assert.deepEqual(r.value, { auth: {} });
  assert.deepEqual(r.errors, [{ path: 'auth.user', message: 'required' }]);
  v.server.port = '8080';
  v.auth.user = 'me';
  r = collectArguments(m, v);
  assert.deepEqual(r.errors, [{ path: 'server.host', message: 'required' }]);
  v.server.host = 'h';
  assert.deepEqual(collectArguments(m, v).value, { server: { host: 'h', port: 8080 }, auth: { user: 'me' } });
});

test('oneOf / anyOf alternatives fall back to a raw JSON field', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      target: { oneOf: [{ type: 'string' }, { type: 'object', properties: { id: { type: 'number' } } }] },
      either: { anyOf: [{ type: 'number' }, { type: 'boolean' }] },
      maybe: { anyOf: [{ type: 'integer' }, { type: 'null' }], default: null },
    },
    required: ['target'],
  });
  assert.equal(field(m, 'target').kind, 'json');
  assert.equal(field(m, 'target').reason, 'oneOf');
  assert.equal(field(m, 'either').kind, 'json');
  assert.equal(field(m, 'either').reason, 'anyOf');
  // X-or-null (what Pydantic writes for Optional[X]) stays a typed field.
  assert.equal(field(m, 'maybe').kind, 'integer');
  assert.equal(field(m, 'maybe').nullable, true);
  const v = initialValues(m);
  assert.deepEqual(v, { target: '', either: '', maybe: '' });
  assert.deepEqual(collectArguments(m, v).errors, [{ path: 'target', message: 'required' }]);
  v.target = '{"id": 4}';
  v.either = 'true';
  assert.deepEqual(collectArguments(m, v).value, { target: { id: 4 }, either: true });
  v.target = '{oops';
  assert.match(collectArguments(m, v).errors[0].message, /^not valid JSON/);
});

test('other shapes the form cannot hold become raw JSON fields', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      any: {},
      mixed: { type: ['string', 'number'] },
      tuple: { type: 'array', items: [{ type: 'string' }, { type: 'number' }] },
      free: { type: 'object', additionalProperties: { type: 'string' } },
    },
  });
  for (const k of ['any', 'mixed', 'tuple', 'free']) assert.equal(field(m, k).kind, 'json', k);
  // A root that is not an object asks for the raw editor as a whole.
  assert.equal(needsRawEditor(buildModel({ type: 'string' })), true);
  assert.equal(needsRawEditor(buildModel({ type: 'object' })), false);
});

test('$ref, $defs and allOf are followed; cycles stop', () => {
  const schema = {
    type: 'object',
    $defs: {
      Point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'] },
      Node: { type: 'object', properties: { next: { $ref: '#/$defs/Node' }, v: { type: 'string' } } },
    },
    properties: {
      p: { $ref: '#/$defs/Point', description: 'a point' },
      both: { allOf: [{ $ref: '#/$defs/Point' }, { properties: { z: { type: 'number' } } }] },
      list: { $ref: '#/$defs/Node' },
      missing: { $ref: '#/$defs/Nope' },
    },
  };
  const m = buildModel(schema);
  const p = field(m, 'p');
  assert.equal(p.kind, 'object');
  assert.equal(p.description, 'a point');
  assert.deepEqual(p.fields.map((f) => f.name), ['x', 'y']);
  assert.deepEqual(field(m, 'both').fields.map((f) => f.name).sort(), ['x', 'y', 'z']);
  assert.equal(field(m, 'missing').kind, 'json');
  // The recursive type is cut to a JSON field at some depth instead of looping.
  let node = field(m, 'list');
  let depth = 0;
  while (node.kind === 'object') {
    node = field(node, 'next');
    depth++;
  }
  assert.equal(node.kind, 'json');
  assert.ok(depth > 1 && depth < 12, `depth ${depth}`);
});

test('nullable types and titles', () => {
  const m = buildModel({
    type: 'object',
    properties: { t: { type: ['string', 'null'], title: 'The text' } },
  });
  const t = field(m, 't');
  assert.equal(t.kind, 'string');
  assert.equal(t.nullable, true);
  assert.equal(t.label, 't');
  assert.equal(t.title, 'The text');
});

test('a tool without an input schema takes an empty object', () => {
  for (const s of [undefined, {}, { type: 'object' }, { type: 'object', properties: {} }]) {
    const m = buildModel(s);
    assert.equal(m.kind, 'object');
    assert.deepEqual(collectArguments(m, initialValues(m)), { value: {}, errors: [] });
  }
});

test('arguments back into the form (the raw JSON editor switching back)', () => {
  const m = buildModel({
    type: 'object',
    properties: {
      s: { type: 'string' },
      n: { type: 'integer' },
      b: { type: 'boolean' },
      e: { enum: ['x', 'y'] },
      arr: { type: 'array', items: { type: 'number' } },
      o: { type: 'object', properties: { k: { type: 'string' } } },
      j: { oneOf: [{ type: 'string' }, { type: 'number' }] },
    },
  });
  const args = { s: 'a', n: 3, b: false, e: 'y', arr: [1, 2], o: { k: 'v' }, j: 5 };
  const { values, lossy } = valuesFromJson(m, args);
  assert.equal(lossy, false);
  assert.deepEqual(collectArguments(m, values).value, args);
  assert.equal(valuesFromJson(m, { extra: 1 }).lossy, true);
  assert.equal(valuesFromJson(m, { n: 1.5 }).lossy, true);
  assert.equal(valuesFromJson(m, { e: 'z' }).lossy, true);
  assert.equal(valuesFromJson(m, { s: 4 }).lossy, true);
  assert.equal(valuesFromJson(m, {}).lossy, false);
});
