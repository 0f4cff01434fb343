#!/usr/bin/env python3
"""summarize.py: medians over the rounds of results/commit.txt, one row per (engine, batch, deletes)."""
import statistics
import sys
from collections import defaultdict


def parse(line):
    return dict(field.split("=", 1) for field in line.split() if "=" in field)


def main(path):
    rounds = defaultdict(list)
    order = []
    with open(path) as lines:
        for line in lines:
            row = parse(line)
            if "commits_per_s" not in row:
                continue
            key = (row["engine"], int(row["batch"]), int(row["delete_pct"]))
            if key not in rounds:
                order.append(key)
            rounds[key].append(row)
    print(f"{'engine':18} {'batch':>5} {'del%':>4} {'commits/s':>10} {'(min..max)':>15} "
          f"{'writes/s':>9} {'p50 ms':>7} {'p99 ms':>7} rounds")
    for key in sorted(order, key=lambda k: (k[1], k[2], order.index(k))):
        rows = rounds[key]
        med = lambda name: statistics.median(float(r[name]) for r in rows)
        cps = [float(r["commits_per_s"]) for r in rows]
        print(f"{key[0]:18} {key[1]:>5} {key[2]:>4} {med('commits_per_s'):>10.0f} "
              f"{f'({min(cps):.0f}..{max(cps):.0f})':>15} {med('writes_per_s'):>9.0f} "
              f"{med('p50_ms'):>7.3f} {med('p99_ms'):>7.3f} {len(rows)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py results/commit.txt")
    main(sys.argv[1])
