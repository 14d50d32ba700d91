#!/usr/bin/env python3
"""Score gradlint against the labelled corpus in bench/corpus/manifest.json.

Runs `gradlint --output-format json` on the cached file of every entry of one split, one
file at a time, and compares its findings with the frozen labels:

- positive: label "problem" and visible_in_file true (the only problems a static check can
  be asked to find); negative: label "healthy". "unknown" entries are never scored, and
  problems not visible in the file are reported in a table of their own (not in precision or
  recall) unless --include-invisible.
- flagged: the file has at least one finding whose severity is in --severities (default
  error,warning) and whose code starts with one of --codes (default GL1,GL2,GL3,GL4; with
  --probe GL9 is added). GL002 never flags; a file gradlint cannot read (GL001) is listed
  as unreadable and left out of precision and recall.

Writes the summary, per-rule hit counts and the per-file table to stdout and to
bench/results/corpus-<split>.json. The held-out split is meant to be scored once, at the
end: it needs --held-out-final.

    python bench/corpus/score.py                  # dev split, static
    python bench/corpus/score.py --probe          # with the gradient probe
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from fetch import DEFAULT_CACHE, DEFAULT_MANIFEST, cache_name, sha256_of  # noqa: E402

RESULTS = HERE.parent / "results"


def find_gradlint(explicit: str | None) -> list[str]:
    if explicit:
        return explicit.split()
    venv = HERE.parent.parent / ".venv" / "bin" / "gradlint"
    if venv.exists():
        return [str(venv)]
    found = shutil.which("gradlint")
    if found:
        return [found]
    return [sys.executable, "-m", "gradlint"]


def run_gradlint(cmd: list[str], path: Path, probe: bool, timeout: float) -> dict:
    argv = [*cmd, "--output-format", "json", "--exit-zero", "--isolated", "-q"]
    if probe:
        argv.append("--probe")
    argv.append(str(path))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"crash": f"timed out after {timeout:.0f} s"}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"crash": f"exit {proc.returncode}, no JSON on stdout; stderr: {proc.stderr.strip()[-500:]}"}
    files = report.get("files") or []
    if len(files) != 1:
        return {"crash": f"expected one file in the report, got {len(files)}"}
    out = files[0]
    out["exit_code"] = proc.returncode
    if proc.stderr.strip():
        out["stderr"] = proc.stderr.strip()[-2000:]
    return out


def is_flagging(f: dict, codes: tuple[str, ...], severities: set[str]) -> bool:
    return f.get("severity") in severities and str(f.get("code", "")).startswith(codes)


def ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["dev", "held-out"], default="dev")
    ap.add_argument("--held-out-final", action="store_true",
                    help="required to score the held-out split (do it once, at the end)")
    ap.add_argument("--probe", action="store_true", help="also run gradlint's gradient probe")
    ap.add_argument("--codes", help="comma-separated code prefixes that count as flagging "
                                    "(default GL1,GL2,GL3,GL4; GL9 added with --probe)")
    ap.add_argument("--severities", default="error,warning",
                    help="severities that count as flagging (default error,warning)")
    ap.add_argument("--include-invisible", action="store_true",
                    help="count problems not visible in the file as positives too")
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--gradlint", help="command to run gradlint (default: the repository's .venv)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per file")
    ap.add_argument("--out", type=Path, help="JSON output (default bench/results/corpus-<split>[-probe].json)")
    args = ap.parse_args(argv)

    if args.split == "held-out" and not args.held_out_final:
        ap.error("the held-out split is scored only once, at the end: pass --held-out-final")
    codes = tuple(c.strip() for c in (args.codes or "GL1,GL2,GL3,GL4").split(",") if c.strip())
    if args.probe and not args.codes:
        codes = codes + ("GL9",)
    severities = {s.strip() for s in args.severities.split(",") if s.strip()}

    manifest = json.loads(args.manifest.read_text())
    entries = [e for e in manifest["entries"] if e["split"] == args.split]
    cmd = find_gradlint(args.gradlint)

    rows = []
    for e in entries:
        path = args.cache / cache_name(e)
        row = {"id": e["id"], "repo": e["repo"], "label": e["label"], "kind": e["kind"],
               "visible_in_file": e["visible_in_file"], "keras_version": e.get("keras_version")}
        if not path.exists() or sha256_of(path) != e["sha256"]:
            row["missing"] = True
            rows.append(row)
            print(f"missing {e['id']} (run bench/corpus/fetch.py)", file=sys.stderr)
            continue
        print(f"linting {e['id']}", file=sys.stderr)
        res = run_gradlint(cmd, path, args.probe, args.timeout)
        findings = res.get("findings") or []
        err = res.get("error")
        row.update({
            "findings": [{"code": f.get("code"), "severity": f.get("severity"), "layer": f.get("layer"),
                          "message": f.get("message"), **({"probe": f["probe"]} if "probe" in f else {})}
                         for f in findings],
            "flagging_codes": sorted({f["code"] for f in findings if is_flagging(f, codes, severities)}),
            "unreadable": err.get("message") if isinstance(err, dict) else (err or None),
            "crash": res.get("crash"),
            "notes": res.get("notes") or [],
            "model": res.get("model"),
        })
        row["flagged"] = bool(row["flagging_codes"])
        rows.append(row)

    def role(r: dict) -> str | None:
        if r["label"] == "healthy":
            return "negative"
        if r["label"] == "problem" and (r["visible_in_file"] or args.include_invisible):
            return "positive"
        if r["label"] == "problem":
            return "invisible"
        return None

    # a file gradlint could not read (GL001) is neither flagged nor cleared: listed, not scored
    scored = [r for r in rows if not r.get("missing") and not r.get("crash") and not r.get("unreadable")]
    tp = [r for r in scored if role(r) == "positive" and r["flagged"]]
    fn = [r for r in scored if role(r) == "positive" and not r["flagged"]]
    fp = [r for r in scored if role(r) == "negative" and r["flagged"]]
    tn = [r for r in scored if role(r) == "negative" and not r["flagged"]]
    inv = [r for r in scored if role(r) == "invisible"]

    per_rule: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in scored:
        rl = role(r)
        if rl is None:
            continue
        seen = {}
        for f in r["findings"]:
            c = f["code"]
            if is_flagging(f, codes, severities) or c not in seen:
                seen[c] = seen.get(c, False) or is_flagging(f, codes, severities)
        for c, flagging in seen.items():
            per_rule[c][f"{rl}_files"] += 1
            if flagging:
                per_rule[c][f"{rl}_flagging_files"] += 1

    summary = {
        "split": args.split, "probe": args.probe, "flag_codes": list(codes), "flag_severities": sorted(severities),
        "include_invisible": args.include_invisible,
        "entries": len(entries), "scored": len(tp) + len(fn) + len(fp) + len(tn),
        "positives": len(tp) + len(fn), "negatives": len(fp) + len(tn),
        "tp": len(tp), "fn": len(fn), "fp": len(fp), "tn": len(tn),
        "precision": ratio(len(tp), len(tp) + len(fp)), "recall": ratio(len(tp), len(tp) + len(fn)),
        "invisible_problems": len(inv), "invisible_flagged": sum(r["flagged"] for r in inv),
        "unknown_skipped": sum(1 for r in rows if r["label"] == "unknown"),
        "missing": [r["id"] for r in rows if r.get("missing")],
        "crashed": {r["id"]: r["crash"] for r in rows if r.get("crash")},
        "unreadable": {r["id"]: r["unreadable"] for r in rows if r.get("unreadable")},
    }
    result = {"summary": summary, "per_rule": {c: dict(v) for c, v in sorted(per_rule.items())}, "files": rows}

    out = args.out or RESULTS / f"corpus-{args.split}{'-probe' if args.probe else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False))

    print(f"# gradlint on the {args.split} split ({'static + probe' if args.probe else 'static'})\n")
    print(f"flagged = any {'/'.join(sorted(severities))} finding of {', '.join(codes)}")
    print(f"positives (problem, visible in file) {summary['positives']}, negatives (healthy) {summary['negatives']}")
    print(f"TP {len(tp)}  FN {len(fn)}  FP {len(fp)}  TN {len(tn)}")
    print(f"precision {summary['precision']}  recall {summary['recall']}")
    print(f"problems not visible in the file: {len(inv)}, of which flagged {summary['invisible_flagged']}")
    for k in ("missing", "crashed", "unreadable"):
        if summary[k]:
            print(f"{k}: {summary[k]}")
    print("\n| rule | files with it: pos / neg / invisible | flagging: pos / neg / invisible |")
    print("|---|---|---|")
    for c, v in sorted(per_rule.items()):
        print(f"| {c} | {v['positive_files']} / {v['negative_files']} / {v['invisible_files']} "
              f"| {v['positive_flagging_files']} / {v['negative_flagging_files']} / {v['invisible_flagging_files']} |")
    print("\n| id | label | kind | visible | flagged | findings (code:severity) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        fs = "missing" if r.get("missing") else r.get("crash") and f"CRASH {r['crash'][:60]}" or \
            (", ".join(f"{f['code']}:{f['severity'][0]}" for f in r["findings"]) or "-")
        if r.get("unreadable"):
            fs = f"GL001 {r['unreadable'][:80]}"
        print(f"| {r['id']} | {r['label']} | {r['kind'] or ''} | {'' if r['visible_in_file'] is None else r['visible_in_file']} "
              f"| {'yes' if r.get('flagged') else 'no'} | {fs} |")
    print(f"\nwritten to {os.path.relpath(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
