#!/usr/bin/env node
// Summarizes one conformance client-mode run: reads <dir>/**/checks.json and stdout.txt and
// prints one tab-separated line: verdict, passed/total, failures, warnings, detail.
//   verdict: PASS (no FAILURE check, client action completed), WARN (same, with WARNING
//   checks: SHOULD-level), FAIL (a FAILURE check, or the action through the gateway failed).
// With --details, also prints every FAILURE / WARNING check with its message and details.
import fs from 'node:fs';
import path from 'node:path';

const [dir, flag] = process.argv.slice(2);
const found = [];
(function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name === 'checks.json') found.push(p);
  }
})(dir);
if (found.length === 0) {
  console.log(['FAIL', '0/0', '-', '-', 'no checks.json (suite did not run the scenario)'].join('\t'));
  process.exit(0);
}
const file = found.sort().at(-1);
const checks = JSON.parse(fs.readFileSync(file, 'utf8'));
const stdoutPath = path.join(path.dirname(file), 'stdout.txt');
const stdout = fs.existsSync(stdoutPath) ? fs.readFileSync(stdoutPath, 'utf8') : '';
const completed = stdout.includes('scenario action completed');
const failed = checks.filter((c) => c.status === 'FAILURE');
const warned = checks.filter((c) => c.status === 'WARNING');
const passed = checks.filter((c) => c.status === 'SUCCESS');
const verdict = failed.length > 0 || !completed ? 'FAIL' : warned.length > 0 ? 'WARN' : 'PASS';
const label = (c) => `${c.id}${c.name && c.name !== c.id ? `(${c.name})` : ''}`;
const detail = [
  completed ? '' : 'client action through the gateway did not complete;',
  failed.map(label).join(', '),
  warned.length ? `warnings: ${warned.map(label).join(', ')}` : '',
]
  .filter(Boolean)
  .join(' ');
console.log(
  [verdict, `${passed.length}/${passed.length + failed.length}`, failed.length, warned.length, detail || '-'].join('\t'),
);
if (flag === '--details') {
  for (const c of [...failed, ...warned]) {
    console.log(`    ${c.status} ${label(c)}: ${c.errorMessage ?? c.description}`);
    if (c.details) console.log(`      details: ${JSON.stringify(c.details).slice(0, 1500)}`);
  }
  if (!completed) {
    const m = stdout.match(/scenario action FAILED: [^\n]*/);
    console.log(`    client: ${m ? m[0] : 'no completion marker (timed out or crashed)'}`);
  }
  console.log(`    results: ${path.dirname(file)}`);
}
