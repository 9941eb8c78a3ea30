#!/usr/bin/env bash
# bench/state: engine vs floor at 1M and 10M findings over 100k images.
# usage: bench/state/run.sh [BUILD_DIR] [WORK_DIR]   (prints JSON lines)
set -euo pipefail
build=${1:-build}
work=${2:-bench/out/state}
bin=$build/bench/state/sw-bench-state
mkdir -p "$work"
for n in 1000000 10000000; do
  for mode in floor engine; do
    rm -rf "$work/$mode-$n"
    "$bin" --mode "$mode" --findings "$n" --images 100000 --dir "$work/$mode-$n"
    rm -rf "$work/$mode-$n"
  done
done
