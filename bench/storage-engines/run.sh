#!/usr/bin/env bash
# run.sh: drives the bench-engines matrix; results go to results/*.txt.
# Builds run under nice -n 19; the measured runs do not, so others' load skews them less.
# Usage: ./run.sh [commit|fsync|load|build|all]   (env: DATA=./data SECS=3 REPS=3 ENGINES="...")
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
BIN=$TARGET/release/bench-engines
DATA=${DATA:-$HERE/data}
SECS=${SECS:-3}
REPS=${REPS:-3}
RESULTS=$HERE/results
ENGINES=${ENGINES:-"sqlite-full sqlite-normal redb redb-2pc fjall-syncall fjall-syncdata fjall-syncall-8m"}
export CARGO_INCREMENTAL=0
mkdir -p "$RESULTS" "$DATA"

build_bench() {
  (cd "$HERE" && CARGO_TARGET_DIR=$TARGET nice -n 19 cargo build --release --quiet)
}

drop_caches() {
  sync
  # Root only; a container may refuse it, then the "cold" figures are warm.
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(drop_caches refused)" >&2
}

# Timed group commits, REPS rounds with the engines interleaved (the machine is shared, so a
# burst of someone else's load hits one round, not one engine); summarize.py takes medians.
run_commit() {
  local out=$RESULTS/commit.txt
  : > "$out"
  for round in $(seq "$REPS"); do
    for spec in "1 0" "8 0" "64 0" "8 25" "64 25"; do
      for engine in $ENGINES; do
        set -- $spec
        rm -rf "$DATA/commit"
        "$BIN" commit --engine "$engine" --dir "$DATA/commit" --batch "$1" \
          --delete-percent "$2" --seconds "$SECS" --prefill 10000 | tee -a "$out"
      done
    done
  done
  rm -rf "$DATA/commit"
  python3 "$HERE/summarize.py" "$out" | tee "$RESULTS/commit-summary.txt"
}

# Sync calls per commit: (calls in N commits - calls in 0 commits) / N, under strace -f -c.
run_fsync() {
  local out=$RESULTS/fsync.txt n=1000
  : > "$out"
  for engine in $ENGINES; do
    for batch in 1 64; do
      local counts=()
      for commits in 0 $n; do
        rm -rf "$DATA/fsync"
        strace -f -c -o "$DATA/strace.txt" -e trace=fsync,fdatasync,sync_file_range,msync,syncfs \
          "$BIN" commit --engine "$engine" --dir "$DATA/fsync" --batch "$batch" --prefill 1000 \
          --max-commits "$commits" --seconds 3600 > /dev/null
        # strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall.
        local detail total
        detail=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync|syncfs)$/ {printf "%s=%s ", $NF, $4}' "$DATA/strace.txt")
        total=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync|syncfs)$/ {s += $4} END {print s + 0}' "$DATA/strace.txt")
        counts+=("$total")
        [ "$commits" = 0 ] || last_detail=$detail
      done
      awk -v e="$engine" -v b="$batch" -v n=$n -v z="${counts[0]}" -v t="${counts[1]}" -v d="$last_detail" \
        'BEGIN {printf "engine=%s batch=%d syncs_per_commit=%.3f (open+prefill+close=%d, with %d commits=%d: %s)\n", e, b, (t - z) / n, z, n, t, d}' \
        | tee -a "$out"
    done
  done
  rm -rf "$DATA/fsync" "$DATA/strace.txt"
}

# 100,000 objects: fill, size; update each once, size; load warm and cold; crash then load.
run_load() {
  local out=$RESULTS/load.txt
  : > "$out"
  for engine in $ENGINES; do
    local dir=$DATA/load-$engine
    rm -rf "$dir"
    "$BIN" fill --engine "$engine" --dir "$dir" --count 100000 --batch 1000 | tee -a "$out"
    "$BIN" update --engine "$engine" --dir "$dir" --count 100000 --batch 1000 | tee -a "$out"
    "$BIN" load --engine "$engine" --dir "$dir" > /dev/null # warm the page cache
    echo "warm: $("$BIN" load --engine "$engine" --dir "$dir")" | tee -a "$out"
    drop_caches
    echo "cold: $("$BIN" load --engine "$engine" --dir "$dir")" | tee -a "$out"
    # A copy of the crashed store, so recovery is timed both cold and warm.
    ( "$BIN" crash --engine "$engine" --dir "$dir" --commits 200 --batch 8 > /dev/null 2>&1 ) 2>/dev/null || true
    rm -rf "$dir.crashed" && cp -a "$dir" "$dir.crashed"
    drop_caches
    echo "after-crash(cold): $("$BIN" load --engine "$engine" --dir "$dir")" | tee -a "$out"
    rm -rf "$dir" && mv "$dir.crashed" "$dir"
    find "$dir" -type f -exec cat {} + > /dev/null # into the page cache
    echo "after-crash(warm): $("$BIN" load --engine "$engine" --dir "$dir")" | tee -a "$out"
    echo "size: $("$BIN" size --dir "$dir")" | tee -a "$out"
    rm -rf "$dir"
  done
}

# Build time, binary size and crate count of each engine alone (clean build, own target dir).
run_build() {
  local out=$RESULTS/build.txt
  : > "$out"
  for feature in none sqlite redb fjall; do
    local target=$TARGET/solo-$feature features=()
    [ "$feature" = none ] || features=(--features "$feature")
    rm -rf "$target"
    local start end
    start=$(date +%s.%N)
    (cd "$HERE" && CARGO_TARGET_DIR=$target nice -n 19 cargo build --release --quiet \
      --no-default-features "${features[@]}")
    end=$(date +%s.%N)
    strip -o "$target/stripped" "$target/release/bench-engines"
    local crates
    crates=$(cd "$HERE" && cargo tree -e normal,build --no-default-features "${features[@]}" \
      --prefix none | sed 's/ (\*)$//' | sort -u | wc -l)
    awk -v f="$feature" -v s="$start" -v e="$end" -v b="$(stat -c %s "$target/stripped")" -v c="$crates" \
      'BEGIN {printf "feature=%s build_secs=%.0f stripped_binary_bytes=%d crates_incl_bench=%d\n", f, e - s, b, c}' \
      | tee -a "$out"
    rm -rf "$target"
  done
}

build_bench
case "${1:-all}" in
  commit) run_commit ;;
  fsync) run_fsync ;;
  load) run_load ;;
  build) run_build ;;
  all) run_commit; run_fsync; run_load; run_build ;;
  *) echo "usage: $0 [commit|fsync|load|build|all]" >&2; exit 2 ;;
esac
