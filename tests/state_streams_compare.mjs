// Compares the diff records `scanwatch process --diff-log` wrote (JSON lines)
// with a hand-written expected file (a JSON array of records), in order.
// Every field of every record and every finding must match exactly (same
// members, same values, same order of records, new findings and resolved
// keys); the only normalisation is the spelling of RFC 3339 `scan_time`
// values (fraction digits, so "10:00:01.1Z" equals "10:00:01.100000Z").
// usage: node state_streams_compare.mjs EXPECTED.json ACTUAL.jsonl
import { readFileSync } from 'node:fs';

function normTime(s) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s);
  if (!m) return s;
  return `${m[1]}.${((m[2] ?? '') + '000000').slice(0, 6)}Z`;
}

function norm(v, key) {
  if (Array.isArray(v)) return v.map((x) => norm(x));
  if (v !== null && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = norm(v[k], k);
    return out;
  }
  if (key === 'scan_time' && typeof v === 'string') return normTime(v);
  return v;
}

function firstDiff(a, b, path) {
  if (typeof a !== typeof b || Array.isArray(a) !== Array.isArray(b) || (a === null) !== (b === null)) {
    return `${path}: expected ${JSON.stringify(a)}, got ${JSON.stringify(b)}`;
  }
  if (Array.isArray(a)) {
    if (a.length !== b.length) return `${path}: expected ${a.length} elements, got ${b.length}: ${JSON.stringify(b)}`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDiff(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return null;
  }
  if (a !== null && typeof a === 'object') {
    const ka = Object.keys(a), kb = Object.keys(b);
    for (const k of ka) if (!(k in b)) return `${path}.${k}: missing`;
    for (const k of kb) if (!(k in a)) return `${path}.${k}: unexpected member ${JSON.stringify(b[k])}`;
    for (const k of ka) {
      const d = firstDiff(a[k], b[k], `${path}.${k}`);
      if (d) return d;
    }
    return null;
  }
  return a === b ? null : `${path}: expected ${JSON.stringify(a)}, got ${JSON.stringify(b)}`;
}

const [expFile, actFile] = process.argv.slice(2);
const expected = norm(JSON.parse(readFileSync(expFile, 'utf8')));
const actual = readFileSync(actFile, 'utf8').split('\n').filter((l) => l !== '')
  .map((l, i) => {
    try { return JSON.parse(l); } catch (e) { console.error(`${actFile} line ${i + 1} is not JSON: ${e.message}`); process.exit(1); }
  }).map((r) => norm(r));
const d = firstDiff(expected, actual, 'records');
if (d) {
  console.error(`${actFile} differs from ${expFile}: ${d}`);
  process.exit(1);
}
