#!/usr/bin/env bash
# Hand-written streams (tests/data/streams/) through `scanwatch process`,
# compared with hand-written expected diff records. For each stream:
#  1. one run == NAME.expected.json (every field, in order);
#  2. the outbox holds the same number of records;
#  3. a re-run on the same input adds nothing;
#  4. every prefix (cut after each line), then the whole input, never writes a
#     diff record twice, and the cuts listed in streams.txt (where the prefix
#     ends between windows) give exactly the expected records.
# usage: state_streams.sh SCANWATCH STREAMS_DIR COMPARE_MJS NODE WORKDIR
set -euo pipefail
sw=$1
dir=$2
compare=$3
node=${4:-}
work=$5
[ -n "$node" ] && [ "$node" != SW_NODE-NOTFOUND ] \
  || { echo "FAIL: node not found; install nodejs (scripts/install-deps)"; exit 1; }
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }

n_streams=0
while IFS='|' read -r name flags cuts; do
  name=$(trim "$name")
  case "$name" in '' | '#'*) continue ;; esac
  flags=$(trim "$flags")
  cuts=$(trim "${cuts:-}")
  in="$dir/$name.ndjson"
  exp="$dir/$name.expected.json"
  [ -f "$in" ] && [ -f "$exp" ] || fail "$name: missing $in or $exp"
  w="$work/$name"
  mkdir -p "$w"
  # shellcheck disable=SC2086 # flags are words
  run() { "$sw" process --state "$1" --diff-log "$2" --log-level error $flags "$3" 2>> "$w/stderr"; }

  # 1. One run.
  run "$w/st" "$w/diff.jsonl" "$in" || fail "$name: process failed: $(cat "$w/stderr")"
  "$node" "$compare" "$exp" "$w/diff.jsonl" || fail "$name: diff records differ from the expected ones"
  n=$(wc -l < "$w/diff.jsonl")

  # 2. The outbox holds one record per diff_log line.
  "$sw" state outbox --state "$w/st" --json > "$w/outbox.json"
  [ "$(wc -l < "$w/outbox.json")" -eq "$n" ] || fail "$name: outbox has $(wc -l < "$w/outbox.json") records, diff_log $n"

  # 3. A re-run on the same input adds nothing.
  cp "$w/diff.jsonl" "$w/diff.first"
  run "$w/st" "$w/diff.jsonl" "$in" || fail "$name: re-run failed"
  cmp -s "$w/diff.first" "$w/diff.jsonl" || fail "$name: a re-run wrote diff records again"
  [ "$("$sw" state outbox --state "$w/st" --json | wc -l)" -eq "$n" ] || fail "$name: a re-run added outbox records"

  # 4. Every prefix, then the whole input.
  total=$(wc -l < "$in")
  for ((cut = 1; cut < total; cut++)); do
    p="$w/cut$cut"
    mkdir -p "$p"
    head -n "$cut" "$in" > "$p/prefix.ndjson"
    run "$p/st" "$p/diff.jsonl" "$p/prefix.ndjson" || fail "$name: prefix $cut failed"
    run "$p/st" "$p/diff.jsonl" "$in" || fail "$name: whole after prefix $cut failed"
    [ -z "$(sort "$p/diff.jsonl" | uniq -d)" ] || fail "$name: cut $cut wrote a diff record twice"
    # One record per window: no (image, first_offset) twice.
    dups=$(grep -o '"partition":"offline","first_offset":"[0-9]*"' "$p/diff.jsonl" | sort | uniq -d || true)
    [ -z "$dups" ] || fail "$name: cut $cut wrote two records for one window"
    if [[ " $cuts " == *" $cut "* ]]; then
      "$node" "$compare" "$exp" "$p/diff.jsonl" || fail "$name: prefix $cut then whole differs from one run"
    fi
  done
  n_streams=$((n_streams + 1))
  echo "ok $name: $n records"
done < "$dir/streams.txt"
[ "$n_streams" -ge 7 ] || fail "only $n_streams streams listed"
echo "OK"
