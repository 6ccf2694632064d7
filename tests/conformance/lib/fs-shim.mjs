// `node:fs` plus a minimal `globSync` for Node < 22 (the conformance bundle
// imports `globSync` from "fs"; it only uses it as globSync('**/<name>', {cwd})).
import * as fs from 'node:fs';
import path from 'node:path';
export * from 'node:fs';
export default fs.default ?? fs;
export function globSync(pattern, opts = {}) {
  if (typeof fs.globSync === 'function') return fs.globSync(pattern, opts);
  const cwd = opts.cwd ?? process.cwd();
  const m = /^\*\*\/([^*?/]+)$/.exec(pattern);
  if (!m) throw new Error(`globSync shim: unsupported pattern ${pattern}`);
  return fs
    .readdirSync(cwd, { recursive: true })
    .map(String)
    .filter((p) => path.basename(p) === m[1]);
}
