#!/usr/bin/env bash
# CLI tests of `scanwatch process` and `scanwatch state`: the sample events,
# bad lines to the dead letter, re-runs that add nothing, and a prefix run
# followed by the whole input that reports every new/resolved finding exactly
# as one uninterrupted run does.
# usage: state_cli.sh SCANWATCH SW_GEN SW_COMPACT_JSON SAMPLES_DIR WORKDIR
set -euo pipefail
sw=$1
gen=$2
compact=$3
samples=$4
work=$5
rm -rf "$work"
mkdir -p "$work"
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

# 1. The real samples (plus one bad line) through process.
for f in "$samples"/*.json; do "$compact" "$f"; done > samples.ndjson
echo '{"truncated":' >> samples.ndjson
"$sw" process --state st --diff-log diff.jsonl --log-level error samples.ndjson 2> run1.err \
  || fail "process failed: $(cat run1.err)"
n_diff=$(wc -l < diff.jsonl)
[ "$n_diff" -ge 1 ] || fail "no diff records from the samples"
grep -q '"image":"stkcatacr.azurecr.io/gm@sha256:d71bd432' diff.jsonl \
  || fail "the Qualys sample image has no diff record"
for field in '"tags":' '"scan_time":' '"new":\[' '"resolved":\[' '"unchanged":' \
  '"partition":"offline"' '"first_offset":' '"last_offset":'; do
  [ "$(grep -c "$field" diff.jsonl)" -eq "$n_diff" ] || fail "diff records lack $field"
done
"$sw" state dead-letter --state st --json > dl.json
[ "$(wc -l < dl.json)" -eq 1 ] || fail "expected 1 dead letter, got $(wc -l < dl.json)"
grep -q '"reason":"not_json' dl.json || fail "dead letter reason: $(cat dl.json)"
"$sw" state outbox --state st --json > outbox.json
[ "$(wc -l < outbox.json)" -eq "$n_diff" ] || fail "outbox and diff log differ in length"
"$sw" state images --state st | grep -q "stkcatacr.azurecr.io/gm@" || fail "state images"
img=$(grep -o '"image":"[^"]*"' diff.jsonl | head -1 | cut -d'"' -f4)
"$sw" state show "$img" --state st > show.txt || fail "state show"
grep -q "finding set:" show.txt || fail "state show output: $(cat show.txt)"
"$sw" state checkpoints --state st | grep -q "partition offline" || fail "checkpoints"
"$sw" state show "no/such@sha256:0" --state st 2>/dev/null && fail "show of an unknown image"

# 2. Running again on the same input adds nothing.
"$sw" process --state st --diff-log diff.jsonl --log-level error samples.ndjson 2> run2.err
[ "$(wc -l < diff.jsonl)" -eq "$n_diff" ] || fail "a re-run wrote diff records again"
grep -q "processed 0 lines" run2.err || fail "re-run: $(cat run2.err)"

# 3. A prefix, then the whole input == one uninterrupted run (delta rescans).
"$gen" --seed 3 --images 40 --findings 12 --rescans 3 --churn 0.2 --out gen.ndjson
total=$(wc -l < gen.ndjson)
"$sw" process --state whole --diff-log whole.jsonl --log-level error gen.ndjson 2>/dev/null
for cut in $((total / 3)) $((total / 2)); do
  rm -rf pre pre.jsonl
  head -n "$cut" gen.ndjson > prefix.ndjson
  "$sw" process --state pre --diff-log pre.jsonl --log-level error prefix.ndjson 2>/dev/null
  "$sw" process --state pre --diff-log pre.jsonl --log-level error gen.ndjson 2>/dev/null
  [ -z "$(sort pre.jsonl | uniq -d)" ] || fail "a diff record was written twice (cut $cut)"
  pairs() { # image + each new finding key; image + each resolved key
    while IFS= read -r line; do
      image=$(printf '%s' "$line" | grep -o '^{"image":"[^"]*"' | cut -d'"' -f4)
      printf '%s' "$line" | sed 's/.*"new":\[\(.*\)\],"resolved".*/\1/' \
        | grep -o '"key":"[^"]*"' | sed "s|^|new $image |" || true
      printf '%s' "$line" | sed 's/.*"resolved":\[\([^]]*\)\].*/\1/' | tr ',' '\n' \
        | grep -v '^$' | sed "s|^|resolved $image |" || true
    done < "$1" | sort
  }
  pairs whole.jsonl > whole.pairs
  pairs pre.jsonl > pre.pairs
  [ -s whole.pairs ] || fail "no findings in the generated run"
  [ -z "$(uniq -d pre.pairs)" ] || fail "a finding was reported twice (cut $cut)"
  cmp -s whole.pairs pre.pairs || fail "prefix+whole differs from one run (cut $cut): $(diff whole.pairs pre.pairs | head -5)"
done
echo "OK"
