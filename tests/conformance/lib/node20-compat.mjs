// Loaded with `node --import ./node20-compat.mjs`: on Node < 22 redirect the
// conformance bundle's `import ... from "fs"` to fs-shim.mjs (adds globSync).
import { register } from 'node:module';
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  register(
    'data:text/javascript,' +
      encodeURIComponent(`
const shim = ${JSON.stringify(new URL('./fs-shim.mjs', import.meta.url).href)};
export async function resolve(spec, ctx, next) {
  if ((spec === 'fs' || spec === 'node:fs') && ctx.parentURL &&
      ctx.parentURL.includes('/@modelcontextprotocol/conformance/')) {
    return { url: shim, shortCircuit: true };
  }
  return next(spec, ctx);
}`),
  );
}
