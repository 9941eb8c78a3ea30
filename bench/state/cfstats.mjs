#!/usr/bin/env node
// Per-column-family flush and compaction work of one scanwatch run, from the
// "rocksdb column family stats" lines that the state logs at debug level when
// a writer closes it (RocksDB's rocksdb.cfstats since open):
//   scanwatch process --log-level debug ... 2> run.log   (or `scanwatch run`)
//   node bench/state/cfstats.mjs run.log [--json]
// Prints, per column family that flushed or compacted anything: MB flushed,
// MB read and written by compactions (flushes included in written), write
// amplification (written / flushed, RocksDB's Sum W-Amp) and compaction CPU
// seconds (CompMergeCPU, flushes included).
import { readFileSync } from "node:fs";

const [file, flag] = process.argv.slice(2);
if (!file) {
  console.error("usage: cfstats.mjs LOGFILE [--json]");
  process.exit(2);
}
const rows = [];
for (const line of readFileSync(file, "utf8").split("\n")) {
  if (!line.includes('"rocksdb column family stats"')) continue;
  let o;
  try {
    o = JSON.parse(line);
  } catch {
    continue;
  }
  const t = o.stats ?? "";
  const flush = /Flush\(GB\): cumulative ([0-9.]+)/.exec(t);
  const comp = /Cumulative compaction: ([0-9.]+) GB write, [0-9.]+ MB\/s write, ([0-9.]+) GB read/.exec(t);
  const sum = t.split("\n").find((l) => l.trim().startsWith("Sum"));
  if (!flush || !comp || !sum) continue;
  // Sum Files Size Unit Score Read Rn Rnp1 Write Wnew Moved W-Amp Rd Wr Comp(sec) CompMergeCPU(sec)
  const f = sum.trim().split(/\s+/);
  const r = {
    cf: o.cf,
    flush_mb: Number(flush[1]) * 1024,
    compaction_read_mb: Number(comp[2]) * 1024,
    compaction_write_mb: Number(comp[1]) * 1024,
    write_amp: Number(f[11]),
    cpu_s: Number(f[15]),
  };
  if (r.flush_mb > 0 || r.compaction_write_mb > 0) rows.push(r);
}
if (rows.length === 0) {
  console.error(`${file}: no "rocksdb column family stats" lines (run with --log-level debug)`);
  process.exit(1);
}
const total = { cf: "total", flush_mb: 0, compaction_read_mb: 0, compaction_write_mb: 0, write_amp: NaN, cpu_s: 0 };
for (const r of rows) for (const k of ["flush_mb", "compaction_read_mb", "compaction_write_mb", "cpu_s"]) total[k] += r[k];
rows.push(total);
if (flag === "--json") {
  for (const r of rows) console.log(JSON.stringify(r));
} else {
  console.log("| CF | flushed MB | compaction read MB | compaction written MB | W-amp | compaction CPU s |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    const wa = Number.isNaN(r.write_amp) ? "" : r.write_amp.toFixed(1);
    console.log(`| ${r.cf} | ${r.flush_mb.toFixed(0)} | ${r.compaction_read_mb.toFixed(0)} | ` +
      `${r.compaction_write_mb.toFixed(0)} | ${wa} | ${r.cpu_s.toFixed(1)} |`);
  }
}
