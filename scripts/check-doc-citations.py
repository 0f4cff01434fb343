#!/usr/bin/env python3
"""Every `Part A §N`, `Part B §N.M`, bare `§N.M` (Part B) and `§N.M step K` cited in the .rs files
must resolve in docs/lifecycle.md: Part A/B sections as headings, §6.N as scenario rows, and steps as
numbered items inside the cited section."""
import re, subprocess, sys, pathlib
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
doc = (root / "docs/lifecycle.md").read_text()
lines = doc.splitlines()
heads = [(i, l) for i, l in enumerate(lines) if l.startswith("#")]

def heading_index(part, num):
    pat = re.compile(rf"^#+ Part {part} §{re.escape(num)}(?![0-9.])")
    return next((i for i, l in heads if pat.search(l)), None)

def section_body(start):
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next((i for i, l in heads if i > start and len(l) - len(l.lstrip("#")) <= level), len(lines))
    return lines[start:end]

cites = set()
tracked = subprocess.run(["git", "-C", str(root), "ls-files", "*.rs"], capture_output=True, text=True, check=True).stdout.split()
for f in (root / t for t in tracked):
    text = f.read_text(errors="ignore").replace("\n", " ")
    text = re.sub(r"\s*//[/!]?\s*", " ", text)  # join comment lines so "Part A\n//! §4" reads whole
    # "Part A §4, §5 and §8": each number belongs to the Part named before it
    part, last_end = "B", -1
    for m in re.finditer(r"Part ([AB])|§([0-9]+(?:\.[0-9]+)*)(\s+steps?\s+([0-9]+(?:\s*(?:[-–,]|and)\s*[0-9]+)*))?", text):
        if m.group(1):
            part, last_end = m.group(1), m.end(); continue
        # A bare § is Part B, unless it continues a list right after a Part's citation
        # ("Part A §4, §5 and §8", "Part B §2.2–§2.6").
        if not re.fullmatch(r"\s*(,|and|–|-|,\s*and)?\s*", text[last_end:m.start()]):
            part = "B"
        last_end = m.end()
        num = m.group(2).rstrip(".")
        steps = re.findall(r"[0-9]+", m.group(4) or "")
        cites.add((part, num, tuple(steps), str(f.relative_to(root))))
        # a bare § after a sentence break is Part B again
    # reset handled per match below
ok = True
seen = {}
for part, num, steps, f in sorted(cites):
    key = (part, num, steps)
    if key in seen: continue
    seen[key] = f
    if part == "B" and num.startswith("6."):
        found = any(re.match(rf"^\| §{re.escape(num)} \|", l) for l in lines)
        where = "scenario row"
    else:
        idx = heading_index(part, num)
        found = idx is not None
        where = lines[idx] if found else "MISSING heading"
        if found and steps:
            body = section_body(idx)
            for s in steps:
                if not any(re.match(rf"^\s*{s}\. ", l) for l in body):
                    found = False; where += f" / MISSING step {s}"
    label = f"Part {part} §{num}" + (f" step(s) {','.join(steps)}" if steps else "")
    print(f"{'ok ' if found else 'BAD'} {label:28} -> {where}   (e.g. {f})")
    ok &= found
# bare "Part A"/"Part B" mentions resolve to the part headings
for p in "AB":
    h = any(l.startswith("## Part " + p) for l in lines)
    print(f"{'ok ' if h else 'BAD'} Part {p} (bare){'':17} -> part heading present")
    ok &= h
print("ALL RESOLVE" if ok else "SOME CITATIONS DO NOT RESOLVE")
sys.exit(0 if ok else 1)
