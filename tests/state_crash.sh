#!/usr/bin/env bash
# Crash test of `scanwatch process`: SIGKILL at many random points of a large
# input, restart after each kill, and compare the final diff records (diff
# log lines, outbox) and checkpoint with an uninterrupted run: none lost,
# none twice.
# usage: state_crash.sh SCANWATCH SW_GEN WORKDIR [KILLS]
set -euo pipefail
scanwatch=$1
gen=$2
work=$3
kills=${4:-24}
rm -rf "$work"
mkdir -p "$work"
cd "$work"

# ~2000 images, 4 scans each, snapshots, clean images, bad and foreign events.
"$gen" --seed 7 --images 1500 --findings 16 --rescans 3 --snapshot-every 3 --clean 0.05 \
  --bad 0.002 --other 0.01 --batch 2 --out input.ndjson
lines=$(wc -l < input.ndjson)
echo "input: $lines lines"

common=(--log-level error --state-batch-events 200)

dump() { # state dir -> comparable dump (no wall-clock fields)
  "$scanwatch" state outbox --state "$1" --json
  "$scanwatch" state checkpoints --state "$1" --json | sed 's/"max_event_time":[^,}]*//'
  "$scanwatch" state images --state "$1" --json | sed 's/"last_apply":"[^"]*"//'
}

start=$(date +%s.%N)
"$scanwatch" process --state ref --diff-log ref.jsonl "${common[@]}" input.ndjson 2> ref.err
end=$(date +%s.%N)
dump ref > ref.dump
echo "uninterrupted: $(wc -l < ref.jsonl) diff records in $(echo "$end - $start" | bc) s"
[ "$(wc -l < ref.jsonl)" -gt 1000 ] || { echo "FAIL: too few diff records"; exit 1; }

hits=0
attempt=0
while [ "$hits" -lt "$kills" ] && [ "$attempt" -lt $((kills * 4)) ]; do
  attempt=$((attempt + 1))
  "$scanwatch" process --state crash --diff-log crash.jsonl "${common[@]}" input.ndjson \
    2>> crash.err &
  pid=$!
  # A random point: 10..250 ms into this run (start-up included).
  sleep "0.$(printf "%03d" $((10 + RANDOM % 240)))"
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null && hits=$((hits + 1))
  fi
  wait "$pid" 2>/dev/null || true
done
echo "SIGKILLs that hit a running process: $hits (attempts $attempt)"
[ "$hits" -ge "$kills" ] || { echo "FAIL: only $hits kills landed"; exit 1; }

"$scanwatch" process --state crash --diff-log crash.jsonl "${common[@]}" input.ndjson 2>> crash.err
dump crash > crash.dump

if ! cmp -s ref.jsonl crash.jsonl; then
  echo "FAIL: diff log differs from the uninterrupted run"
  echo "ref: $(wc -l < ref.jsonl) lines, crash: $(wc -l < crash.jsonl) lines"
  diff <(cut -c1-200 ref.jsonl) <(cut -c1-200 crash.jsonl) | head -20
  exit 1
fi
if ! cmp -s ref.dump crash.dump; then
  echo "FAIL: state (outbox, checkpoints, images) differs from the uninterrupted run"
  diff <(cut -c1-200 ref.dump) <(cut -c1-200 crash.dump) | head -20
  exit 1
fi
dups=$(sort crash.jsonl | uniq -d | wc -l)
[ "$dups" -eq 0 ] || { echo "FAIL: $dups duplicate diff records"; exit 1; }
echo "OK: $(wc -l < crash.jsonl) diff records, identical to the uninterrupted run"
