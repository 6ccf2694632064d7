// Pure parts of the API client and the result view. Run: node --test layers/ui/tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { qs, endpointMissing, ApiError } from '../assets/api.js';
import { imageUrl } from '../assets/result-view.js';

test('query strings leave empty values out', () => {
  assert.equal(qs({}), '');
  assert.equal(qs({ a: 'x y', b: '', c: undefined, d: 0 }), '?a=x+y&d=0');
  assert.equal(qs({ tool: '\u0000' }), '?tool=%00');
});

test('a missing endpoint is told apart from a missing entry', () => {
  const e = (status, code, message) => new ApiError(status, code, message);
  assert.equal(endpointMissing(e(404, 'not_found', 'no such endpoint; see /api/v1/health')), true);
  assert.equal(endpointMissing(e(405, 'method_not_allowed', 'POST is not allowed')), true);
  assert.equal(endpointMissing(e(400, 'invalid_request', 'unknown query parameter "after"; use server, tool')), true);
  assert.equal(endpointMissing(e(404, 'not_found', 'no request 42 in the log')), false);
  assert.equal(endpointMissing(e(404, 'unknown_request', 'no such request')), false);
  assert.equal(endpointMissing(e(400, 'invalid_request', 'limit must be a number')), false);
  assert.equal(endpointMissing(new Error('x')), false);
});

test('images are shown only as data: URLs of raster types with base64 data', () => {
  assert.equal(imageUrl({ mimeType: 'image/png', data: 'iVBORw0KGgo=' }), 'data:image/png;base64,iVBORw0KGgo=');
  assert.equal(imageUrl({ mimeType: 'IMAGE/JPEG', data: 'AAAA\nBBBB' }), 'data:image/jpeg;base64,AAAABBBB');
  assert.equal(imageUrl({ mimeType: 'image/svg+xml', data: 'PHN2Zz4=' }), null);
  assert.equal(imageUrl({ mimeType: 'text/html', data: 'PGI+' }), null);
  assert.equal(imageUrl({ mimeType: 'image/png', data: 'x");alert(1)//' }), null);
  assert.equal(imageUrl({ mimeType: 'image/png;x=1', data: 'AAAA' }), null);
  assert.equal(imageUrl({ mimeType: 'image/png' }), null);
  assert.equal(imageUrl(null), null);
});
