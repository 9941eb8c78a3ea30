// Turns bench/e2e results (JSON lines of run.mjs and mail.mjs) into the markdown tables of
// docs/benchmarks.md (section "e2e") on stdout and, with --plots DIR, gnuplot PNGs:
// DIR/e2e-size.png, DIR/e2e-partitions.png, DIR/e2e-mail.png.
//   node bench/e2e/report.mjs RESULTS.jsonl [--plots docs]
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";

const args = process.argv.slice(2);
const file = args[0];
const pi = args.indexOf("--plots");
const plots = pi >= 0 ? args[pi + 1] : null;
if (!file) {
  console.error("usage: node report.mjs RESULTS.jsonl [--plots DIR]");
  process.exit(2);
}
const rows = readFileSync(file, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const sums = rows.filter((r) => r.summary).map((r) => r.summary);
const meas = rows.filter((r) => !r.summary);
const f0 = (x) => (x == null ? "–" : Math.round(x).toLocaleString("en-US"));
const f1 = (x) => (x == null ? "–" : x.toFixed(1));
const f2 = (x) => (x == null ? "–" : x.toFixed(2));
const mib = (kb) => (kb == null ? "–" : (kb / 1024).toFixed(0));
const rng = (s, f) => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : "–");

const main = sums.find((s) => s.label === "main") ?? sums.find((s) => s.e2e && (s.bare || s.parse));
if (main) {
  const e = main.e2e;
  console.log(`### e2e: ${f0(main.events)} events (${(main.bytes / 1e6).toFixed(0)} MB), ${main.images.toLocaleString("en-US")} images, ` +
    `${main.partitions} partitions, median of ${main.rounds} rounds (min–max)\n`);
  console.log("| scanwatch run | value |");
  console.log("|---|---:|");
  console.log(`| events/s | ${rng(e.events_per_s, f0)} |`);
  console.log(`| findings/s | ${rng(e.findings_per_s, f0)} |`);
  console.log(`| MB/s | ${rng(e.mb_per_s, f1)} |`);
  console.log(`| peak RSS (MiB) | ${rng(e.peak_rss_kb, mib)} |`);
  console.log(`| CPU s per million findings | ${rng(e.cpu_s_per_million_findings, f1)} |`);
  if (main.live) {
    console.log(`| enqueue → processed latency at ${f0(main.live.rate)} events/s live: p50 / p99 | ` +
      `${(main.live.p50_s * 1000).toFixed(1)} ms / ${(main.live.p99_s * 1000).toFixed(1)} ms |`);
  }
  console.log("");
  console.log("| side | findings (events)/s, median (min–max) | CPU µs per finding, median (min–max) | e2e vs it (per-round ratio of rates) |");
  console.log("|---|---:|---:|---:|");
  const R = main.ratios;
  const line = (name, k, ratio) => {
    if (!main[k]) return;
    console.log(`| ${name} | ${rng(main[k].per_s, f0)} | ${rng(main[k].cpu_us_per_finding, f1)} | ${ratio ? rng(ratio, f2) + "×" : "–"} |`);
  };
  line("scanwatch run (end to end)", "e2e", null);
  line("(a) bare proton receiver (emulator delivery)", "bare", R.e2e_over_bare_rate);
  line("(b) cJSON parse + delete of the bodies", "parse", R.e2e_over_parse_rate);
  line("(c) raw RocksDB Puts of the stored key + finding JSON", "rocksdb", R.e2e_over_rocksdb_rate);
  line("(d) @azure/event-hubs subscribe + JSON.parse", "js", R.e2e_over_js_rate);
  console.log("");
  if (R.e2e_cpu_over_floors) {
    console.log(`CPU per finding, e2e / (a + b + c): ${rng(R.e2e_cpu_over_floors, f2)} (bar ≤ 1.5).`);
  }
  if (R.js_cpu_over_e2e_cpu) {
    console.log(`CPU per finding, SDK parse-only / e2e: ${rng(R.js_cpu_over_e2e_cpu, f2)}; rate e2e / SDK: ${rng(R.e2e_over_js_rate, f2)} (bar ≥ 3).`);
  }
  console.log("");
}

const e2eOf = (label) => meas.filter((r) => r.mode === "e2e" && r.label === label);
const sizes = sums.filter((s) => /^size-/.test(s.label)).map((s) => ({ s, r: e2eOf(s.label)[0] })).filter((x) => x.r)
  .sort((a, b) => a.r.findings - b.r.findings);
if (sizes.length) {
  console.log("| findings | images | findings/s | MB/s | peak RSS MiB | CPU s / M findings | state on disk MiB |");
  console.log("|---:|---:|---:|---:|---:|---:|---:|");
  for (const { s, r } of sizes) {
    console.log(`| ${f0(r.findings)} | ${f0(s.images)} | ${f0(r.findings_per_s)} | ${f1(r.mb_per_s)} | ${mib(r.peak_rss_kb)} | ` +
      `${f1(r.cpu_s_per_million_findings)} | ${(r.state_bytes / 1048576).toFixed(0)} |`);
  }
  console.log("");
}
// big: timed streams (enqueued times follow the scans), 10 findings per image, 9 daily rescans.
const big = sums.filter((s) => /^big-/.test(s.label)).map((s) => ({ s, r: e2eOf(s.label)[0] })).filter((x) => x.r)
  .sort((a, b) => a.r.findings - b.r.findings);
if (big.length) {
  console.log("| findings | images | scans per image | enqueued times | findings/s | MB/s | peak RSS MiB | CPU s / M findings | state on disk MiB | windows closed | sw-gen s | emulator start-up s | emulator RSS after load MiB |");
  console.log("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const { s, r } of big) {
    console.log(`| ${f0(r.findings)} | ${f0(s.images)} | ${s.rescans != null ? s.rescans + 1 : "–"} | ` +
      `${r.timed ? "of the scans (timed)" : "all at preload"} | ${f0(r.findings_per_s)} | ` +
      `${f1(r.mb_per_s)} | ${mib(r.peak_rss_kb)} | ${f1(r.cpu_s_per_million_findings)} | ${(r.state_bytes / 1048576).toFixed(0)} | ` +
      `${f0(r.windows_closed)} | ${f1(r.gen_seconds)} | ${f1(r.emulator_load_seconds)} | ${mib(r.emulator_rss_kb)} |`);
  }
  console.log("");
  const timed = big.filter(({ r }) => r.timed);
  if (timed.length > 1) {
    const lo = timed[0].r, hi = timed[timed.length - 1].r;
    console.log(`Peak RSS at ${f0(hi.findings)} findings: ${mib(hi.peak_rss_kb)} MiB (bar ≤ 150 MB), ` +
      `${f2(hi.peak_rss_kb / lo.peak_rss_kb)}× the ${f0(lo.findings)}-finding run (bar ≤ 1.2).`);
    // The same tenant (images) after its first day only: the state grows 10x, the daily load
    // (images scanned per day, windows open at once) stays the same.
    const day1 = timed.find(({ s, r }) => s.images === timed[timed.length - 1].s.images && r.findings < hi.findings);
    if (day1) {
      console.log(`Same ${f0(day1.s.images)} images after their first scan only (${f0(day1.r.findings)} findings): ` +
        `${mib(day1.r.peak_rss_kb)} MiB; the ${f0(hi.findings)}-finding run is ${f2(hi.peak_rss_kb / day1.r.peak_rss_kb)}× that.`);
    }
    console.log("");
  }
}
const parts = sums.filter((s) => /^parts-/.test(s.label)).map((s) => ({ s, r: e2eOf(s.label)[0] })).filter((x) => x.r)
  .sort((a, b) => a.s.partitions - b.s.partitions);
if (parts.length) {
  console.log("| partitions | findings | findings/s | peak RSS MiB | CPU s / M findings |");
  console.log("|---:|---:|---:|---:|---:|");
  for (const { s, r } of parts) {
    console.log(`| ${s.partitions} | ${f0(r.findings)} | ${f0(r.findings_per_s)} | ${mib(r.peak_rss_kb)} | ${f1(r.cpu_s_per_million_findings)} |`);
  }
  console.log("");
}
const mail = meas.filter((r) => /^mail_/.test(r.mode));
if (mail.length) {
  console.log("| mail_mode | images rescanned | diff records | mails | recipients (2 per mail) | MB of requests | largest mail | most mails in one minute | minutes at mail_rate 30 |");
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const m of mail) {
    console.log(`| ${m.mode.slice(5)} | ${f0(m.images)} | ${f0(m.diff_records)} | ${f0(m.mails)} | ${f0(m.recipients)} | ` +
      `${(m.mail_bytes / 1e6).toFixed(1)} | ${(m.max_mail_bytes / 1e6).toFixed(2)} MB | ${f0(m.max_mails_per_minute)}` +
      `${m.mode === "mail_per_image" ? " (mail_rate 6000 here)" : ""} | ${f1(m.minutes_at_30_per_min)} |`);
  }
  console.log("");
}

function gnuplot(script) {
  const r = spawnSync("gnuplot", [], { input: script });
  if (r.status !== 0) {
    console.error(`gnuplot failed: ${r.stderr}`);
    process.exitCode = 1;
  }
}
if (plots) {
  const tmp = mkdtempSync(join(tmpdir(), "sw-e2e-plot-"));
  const term = "set terminal pngcairo noenhanced size 900,480 font 'sans,10'\n";
  if (sizes.length) {
    const d = join(tmp, "size.dat");
    writeFileSync(d, sizes.map(({ r }) => `${r.findings} ${r.findings_per_s} ${r.peak_rss_kb / 1024}`).join("\n") + "\n");
    // the big phase's timed streams of 10 daily scans (1.09M and 10.9M findings), if run
    const tenDays = big.filter(({ s, r }) => r.timed && s.rescans === 9);
    const t = join(tmp, "timed.dat");
    writeFileSync(t, tenDays.map(({ r }) => `${r.findings} ${r.findings_per_s} ${r.peak_rss_kb / 1024}`).join("\n") + "\n");
    const timedPlot = tenDays.length
      ? `, '${t}' using 1:2 with linespoints lw 2 dt 2 title 'findings/s, timed, 10 daily scans', ` +
        `'' using 1:3 axes x1y2 with linespoints lw 2 dt 2 title 'peak RSS MiB, timed, 10 daily scans'`
      : "";
    gnuplot(`${term}set output '${join(plots, "e2e-size.png")}'
set title 'scanwatch run: stream size (solid: 11 events per image, all preloaded; dashed: timed, 10 daily scans)'
set logscale x; set xlabel 'findings in the stream'; set grid; set key left top
set ylabel 'findings/s'; set y2label 'peak RSS (MiB)'; set y2tics; set ytics nomirror
set yrange [0:*]; set y2range [0:*]
plot '${d}' using 1:2 with linespoints lw 2 title 'findings/s', '' using 1:3 axes x1y2 with linespoints lw 2 title 'peak RSS MiB'${timedPlot}
`);
  }
  if (parts.length) {
    const d = join(tmp, "parts.dat");
    writeFileSync(d, parts.map(({ s, r }) => `${s.partitions} ${r.findings_per_s} ${r.peak_rss_kb / 1024}`).join("\n") + "\n");
    gnuplot(`${term}set output '${join(plots, "e2e-partitions.png")}'
set title 'scanwatch run: partitions of the hub (one replica)'
set logscale x 2; set xlabel 'partitions'; set grid
set ylabel 'findings/s'; set y2label 'peak RSS (MiB)'; set y2tics; set ytics nomirror
set yrange [0:*]; set y2range [0:*]
plot '${d}' using 1:2 with linespoints lw 2 title 'findings/s', '' using 1:3 axes x1y2 with linespoints lw 2 title 'peak RSS MiB'
`);
  }
  if (mail.length) {
    const d = join(tmp, "mail.dat");
    writeFileSync(d, mail.map((m) => `${m.mode.slice(5)} ${m.mails} ${m.recipients}`).join("\n") + "\n");
    gnuplot(`${term}set output '${join(plots, "e2e-mail.png")}'
set title 'Mass-rescan day: mails and recipients (log scale); Exchange: 10,000 recipients/day'
set style data histograms; set style fill solid 0.7; set logscale y; set yrange [1:*]; set grid y
set arrow from graph 0, first 10000 to graph 1, first 10000 nohead lw 2 dt 2
plot '${d}' using 2:xtic(1) title 'mails', '' using 3 title 'recipients'
`);
  }
  rmSync(tmp, { recursive: true, force: true });
}
