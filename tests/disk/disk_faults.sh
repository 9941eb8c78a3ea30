#!/usr/bin/env bash
# Disk faults under `scanwatch process` (issue 9, item 3).
#
#   disk_faults.sh full     SCANWATCH SW_GEN POKE WORK EMULATOR
#                            state disk full, then read-only, for `process`; then the service
#                            (`run` against the emulator) on a full disk
#                            (needs root: tmpfs mounts; exit 77 = skip)
#   disk_faults.sh corrupt  SCANWATCH SW_GEN POKE WORK   truncated/garbled SST, MANIFEST, CURRENT;
#                                                        a newer schema (any user)
#
# Each fault must give exit status 1 and one clear message naming the state
# directory and the problem; no checkpoint may pass unwritten state: after a
# restart on a good disk the diff log and the outbox equal those of an
# undisturbed run.
set -euo pipefail
mode=$1
scanwatch=$2
gen=$3
poke=$4
work=$5
emulator=${6:-}

mounted=()
cleanup() {
  for m in "${mounted[@]:+${mounted[@]}}"; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  exit 1
}

expect_in() { # file needle what
  grep -qF -- "$2" "$1" || fail "$3: expected to find '$2' in:
$(cat "$1")"
}

rm -rf "$work"
mkdir -p "$work"
cd "$work"

# 40 images x 4 scans of 50 findings (~27 MB, 9200 lines): several batches,
# and with a 1 MiB write buffer several SST files.
"$gen" --seed 3 --images 40 --findings 50 --rescans 3 --churn 0.2 --out input.ndjson
head -n 4000 input.ndjson > prefix.ndjson
common=(--log-level error --state-write-buffer 1M)

dump() { # state dir -> comparable dump (no wall-clock fields)
  "$scanwatch" state outbox --state "$1" --json
  "$scanwatch" state checkpoints --state "$1" --json | sed 's/"max_event_time":[^,}]*//'
}

checkpoint_of() { # state dir -> offset of partition offline, or "none"
  "$scanwatch" state checkpoints --state "$1" --json 2>/dev/null |
    sed -n 's/.*"offset":"\([0-9]*\)".*/\1/p' | head -n 1 | grep . || echo none
}

# Reference 1: the whole input at once. Reference 2: the prefix, then the
# whole input (the end of the prefix closes every window, rule d).
"$scanwatch" process --state ref1 --diff-log ref1.jsonl "${common[@]}" input.ndjson 2> ref1.err
"$scanwatch" process --state ref2 --diff-log ref2.jsonl "${common[@]}" prefix.ndjson 2> ref2.err
"$scanwatch" process --state ref2 --diff-log ref2.jsonl "${common[@]}" input.ndjson 2>> ref2.err
dump ref1 > ref1.dump
dump ref2 > ref2.dump
[ "$(wc -l < ref1.jsonl)" -ge 100 ] || fail "reference run has too few diff records"
mode_of() { stat -c %a "$1"; }
[ "$(mode_of ref1)" = 700 ] || fail "state_dir created with mode $(mode_of ref1), want 700"

same_as() { # state dir, diff log, reference name
  dump "$1" > "$1.dump"
  cmp -s "$2" "$3.jsonl" || fail "$1: diff log differs from the undisturbed run
($(wc -l < "$2") vs $(wc -l < "$3.jsonl") lines)"
  cmp -s "$1.dump" "$3.dump" || fail "$1: outbox/checkpoint differ from the undisturbed run:
$(diff <(cut -c1-160 "$1.dump") <(cut -c1-160 "$3.dump") | head -n 10)"
}

if [ "$mode" = full ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "SKIP: mounting a small tmpfs needs root"
    exit 77
  fi
  mkdir -p mnt
  if ! mount -t tmpfs -o size=2m,mode=0755 tmpfs mnt 2>mount.err; then
    echo "SKIP: cannot mount tmpfs: $(cat mount.err)"
    exit 77
  fi
  mounted+=("$work/mnt")

  # 1. Disk full, at several points: every run stops with a clear error and
  # leaves a checkpoint that covers only committed state; growing the disk
  # and restarting finishes with exactly the undisturbed result.
  failures=0
  last=none
  for size in 2 3 4 5 6 7 8 9 10 11 12 13 14 16 18 20 24 28 32; do
    mount -o remount,size=${size}m mnt
    rc=0
    "$scanwatch" process --state mnt/st --diff-log full.jsonl "${common[@]}" input.ndjson \
      > /dev/null 2> full.err || rc=$?
    [ "$rc" = 0 ] && break
    [ "$rc" = 1 ] || fail "disk full (${size}m): exit status $rc, want 1; stderr:
$(cat full.err)"
    expect_in full.err "scanwatch process: state_dir 'mnt/st'" "disk full (${size}m)"
    expect_in full.err "No space left on device" "disk full (${size}m)"
    expect_in full.err "the state disk is full" "disk full (${size}m)"
    [ "$(grep -c . full.err)" = 1 ] || fail "disk full (${size}m): want one error line:
$(cat full.err)"
    cp=$(checkpoint_of mnt/st)
    echo "disk full at ${size}m: checkpoint at line $cp, $(wc -l < full.jsonl) diff records so far"
    [ "$cp" = none ] || [ "$cp" -lt 9200 ] || fail "disk full (${size}m): checkpoint at the end"
    [ "$cp" = none ] || [ "$last" = none ] || [ "$cp" -ge "$last" ] ||
      fail "disk full (${size}m): checkpoint went back from $last to $cp"
    [ "$cp" = none ] || last=$cp
    failures=$((failures + 1))
  done
  [ "$failures" -ge 3 ] || fail "only $failures runs hit the full disk"
  [ "$last" != none ] || fail "the disk never held a checkpoint: sizes too small"
  mount -o remount,size=256m mnt
  "$scanwatch" process --state mnt/st --diff-log full.jsonl "${common[@]}" input.ndjson \
    2> full.err || fail "restart after the disk grew: $(cat full.err)"
  same_as mnt/st full.jsonl ref1
  echo "disk full: restart on a larger disk equals the undisturbed run"

  # 2. Read-only: the prefix is processed, the disk turns read-only; the next
  # run is refused clearly (read-only inspection still works); read-write
  # again, the run finishes exactly like the undisturbed one.
  umount mnt
  mount -t tmpfs -o size=256m,mode=0755 tmpfs mnt
  "$scanwatch" process --state mnt/ro --diff-log ro.jsonl "${common[@]}" prefix.ndjson 2> ro.err
  mount -o remount,ro mnt
  rc=0
  "$scanwatch" process --state mnt/ro --diff-log ro.jsonl "${common[@]}" input.ndjson \
    2> ro.err || rc=$?
  [ "$rc" = 1 ] || fail "read-only: exit status $rc, want 1"
  expect_in ro.err "state_dir 'mnt/ro'" "read-only"
  expect_in ro.err "Read-only file system" "read-only"
  expect_in ro.err "state_dir is not writable" "read-only"
  rc=0
  "$scanwatch" process --state mnt/new --diff-log ro.jsonl "${common[@]}" input.ndjson \
    2> ro.err || rc=$?
  [ "$rc" = 1 ] || fail "read-only, new state: exit status $rc, want 1"
  expect_in ro.err "cannot create state_dir 'mnt/new': Read-only file system" "read-only new"
  "$scanwatch" state checkpoints --state mnt/ro > ro.cp || fail "state checkpoints on a read-only disk"
  expect_in ro.cp "offset 4000" "read-only inspection"
  mount -o remount,rw mnt
  "$scanwatch" process --state mnt/ro --diff-log ro.jsonl "${common[@]}" input.ndjson \
    2> ro.err || fail "read-write again: $(cat ro.err)"
  same_as mnt/ro ro.jsonl ref2
  echo "read-only: refused clearly; read-write again equals the undisturbed run"
  umount mnt

  # 3. The service on a full disk: `run` stops with status 1 and the same clear
  # error (nothing settled past the last commit); on a larger disk it resumes
  # and its diff records equal an undisturbed service run's.
  [ -n "$emulator" ] || fail "full mode needs the emulator"
  head -n 3000 input.ndjson > svc.ndjson
  "$emulator" --port 0 --hub eh1:1 --no-auth --no-control-stdin --log-level error \
    --load svc.ndjson > emu.out 2> emu.err &
  emu_pid=$!
  for _ in $(seq 100); do grep -q "ready port=" emu.out && break; sleep 0.1; done
  port=$(sed -n 's/.*ready port=\([0-9]*\).*/\1/p' emu.out)
  [ -n "$port" ] || fail "the emulator did not start: $(cat emu.err)"
  svc() { # state dir, diff log, stderr file
    "$scanwatch" run --connection-string \
      "Endpoint=sb://127.0.0.1:$port/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=eh1;UseDevelopmentEmulator=true" \
      --state-dir "$1" --diff-log "$2" --mail-sink "dir:$work/svc-mail" --mail-to a@example.com \
      --scan-quiet 2s --metrics-port -1 --progress-interval 0 --log-level warn \
      --lag-poll-interval 200ms --state-write-buffer 1M 2> "$3" &
    svc_pid=$!
  }
  until_lines() { # diff log, count: wait (30 s at most) until it has that many lines, stable
    for _ in $(seq 300); do
      [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && { sleep 1; return 0; }
      sleep 0.1
    done
    return 1
  }
  stop_svc() {
    kill -TERM "$svc_pid" 2> /dev/null || true
    rc=0
    wait "$svc_pid" || rc=$?
    [ "$rc" = 0 ] || fail "the service did not stop cleanly on SIGTERM (status $rc): $(tail -n 3 "$1")"
  }
  # The undisturbed service run, for reference.
  mkdir -p svcref
  "$scanwatch" process --state svcoff --diff-log svcoff.jsonl --scan-quiet 2s "${common[@]}" \
    svc.ndjson 2> /dev/null
  want=$(wc -l < svcoff.jsonl)
  svc svcref/st svcref.jsonl svcref.err
  until_lines svcref.jsonl "$want" || fail "undisturbed service: $(wc -l < svcref.jsonl) of $want diff records"
  stop_svc svcref.err
  mount -t tmpfs -o size=2m,mode=0755 tmpfs mnt
  svc mnt/svc svcfull.jsonl svcfull.err
  rc=0
  for _ in $(seq 600); do kill -0 "$svc_pid" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$svc_pid" 2> /dev/null; then
    kill -KILL "$svc_pid"
    fail "the service kept running on a full disk: $(tail -n 3 svcfull.err)"
  fi
  wait "$svc_pid" || rc=$?
  [ "$rc" = 1 ] || fail "service on a full disk: exit status $rc, want 1: $(tail -n 3 svcfull.err)"
  expect_in svcfull.err "scanwatch run: state_dir 'mnt/svc'" "service, disk full"
  expect_in svcfull.err "the state disk is full" "service, disk full"
  echo "service, disk full: $(grep '^scanwatch run:' svcfull.err | head -c 200)"
  echo "  checkpoint left: $(checkpoint_of mnt/svc 2> /dev/null || true), diff records so far: $(wc -l < svcfull.jsonl 2> /dev/null || echo 0)"
  mount -o remount,size=256m mnt
  svc mnt/svc svcfull.jsonl svcfull2.err
  until_lines svcfull.jsonl "$want" || fail "service after the disk grew: $(wc -l < svcfull.jsonl) of $want diff records"
  stop_svc svcfull2.err
  strip() { sed 's/,"partition":.*}$/}/' "$1" | sort; }
  cmp -s <(strip svcfull.jsonl) <(strip svcref.jsonl) || fail "service: diff records after the full disk differ from the undisturbed run:
$(diff <(strip svcfull.jsonl | cut -c1-150) <(strip svcref.jsonl | cut -c1-150) | head -n 6)"
  kill -TERM "$emu_pid" 2> /dev/null || true
  wait "$emu_pid" 2> /dev/null || true
  echo "service, disk full: restart on a larger disk equals the undisturbed service run ($want diff records)"
  exit 0
fi

[ "$mode" = corrupt ] || fail "unknown mode $mode"

# 3. Corruption: a state holding the prefix, damaged in one way each time.
"$scanwatch" process --state base --diff-log base.jsonl "${common[@]}" prefix.ndjson 2> base.err
ls base/*.sst > /dev/null 2>&1 || fail "the prefix state has no SST file"
garble() { # file offset-fraction(percent) bytes: overwrite with a pattern (coreutils only)
  local at=$(($(stat -c %s "$1") * $2 / 100))
  head -c "$3" /dev/zero | tr '\0' '\245' | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}
for damage in sst_truncated sst_garbled manifest_truncated manifest_garbled current_wrong \
  current_missing; do
  rm -rf c
  cp -a base c
  cp base.jsonl c.jsonl
  case $damage in
    sst_truncated) for f in c/*.sst; do truncate -s $(($(stat -c %s "$f") / 2)) "$f"; done ;;
    sst_garbled) for f in c/*.sst; do garble "$f" 40 16; done ;;
    manifest_truncated) truncate -s 20 c/MANIFEST-* ;;
    manifest_garbled) for f in c/MANIFEST-*; do garble "$f" 50 8; done ;;
    current_wrong) echo "MANIFEST-999999" > c/CURRENT ;;
    current_missing) rm c/CURRENT ;;
  esac
  rc=0
  "$scanwatch" process --state c --diff-log c.jsonl "${common[@]}" input.ndjson \
    > /dev/null 2> c.err || rc=$?
  [ "$rc" = 1 ] || fail "$damage: exit status $rc, want 1; stderr:
$(cat c.err)"
  expect_in c.err "state_dir 'c'" "$damage"
  grep -q "Corruption\|No such file" c.err || fail "$damage: the message names no problem:
$(cat c.err)"
  expect_in c.err "the state is corrupt" "$damage"
  cmp -s c.jsonl base.jsonl || fail "$damage: diff records were written from a damaged state"
  rc=0
  "$scanwatch" state images --state c > /dev/null 2> c.err || rc=$?
  if [ "$damage" != sst_garbled ]; then # a garbled data block is found when it is read
    [ "$rc" = 1 ] || fail "$damage: scanwatch state exit status $rc, want 1"
    expect_in c.err "state_dir 'c'" "$damage (scanwatch state)"
  fi
  echo "$damage: refused: $(head -c 300 c.err)"
done
# Recovery from a backup: the untouched copy finishes like the undisturbed run.
"$scanwatch" process --state base --diff-log base.jsonl "${common[@]}" input.ndjson 2> base.err
same_as base base.jsonl ref2
echo "corruption: every damage refused; the backup copy finishes like the undisturbed run"

# 4. A state written by a newer scanwatch: process, run and state refuse it.
"$scanwatch" process --state newer --diff-log /dev/null "${common[@]}" prefix.ndjson 2> /dev/null
# 99: newer than any schema this build could have (the version moves: schema 2 came with the
# compact image records).
"$poke" schema newer 99
for cmd in process run state; do
  rc=0
  case $cmd in
    process) "$scanwatch" process --state newer input.ndjson > /dev/null 2> s.err || rc=$? ;;
    run)
      "$scanwatch" run --state-dir newer --metrics-port -1 --mail-to a@example.com \
        --mail-sink dir:mail --connection-string \
        "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=h;UseDevelopmentEmulator=true" \
        > /dev/null 2> s.err || rc=$?
      ;;
    state) "$scanwatch" state images --state newer > /dev/null 2> s.err || rc=$? ;;
  esac
  [ "$rc" = 1 ] || fail "newer schema, $cmd: exit status $rc, want 1; stderr:
$(cat s.err)"
  expect_in s.err "state_dir 'newer'" "newer schema, $cmd"
  expect_in s.err "written by a newer scanwatch (schema version 99; this build understands up to" \
    "newer schema, $cmd"
  echo "newer schema: $cmd refuses: $(grep -m1 newer s.err | head -c 200)"
done
echo "PASS"
