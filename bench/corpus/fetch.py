#!/usr/bin/env python3
"""Fill bench/corpus/cache/ with the model files listed in bench/corpus/manifest.json.

Each entry is downloaded from raw.githubusercontent.com at its pinned commit (or from the
entry's own "url", for files kept in Git LFS), or, with --from-mirror DIR, copied out of a
local bare git mirror DIR/<owner>+<name>/repo (as the search tool's `fetch` lays them out).
Every file is checked against the manifest's sha256 before it is kept; files already in the
cache with the right hash are skipped. Standard library only.

    python bench/corpus/fetch.py                       # download everything missing
    python bench/corpus/fetch.py --from-mirror /work/.mirror
    python bench/corpus/fetch.py --split dev --ids dd-motiv-orig,kws-087
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MANIFEST = HERE / "manifest.json"
DEFAULT_CACHE = HERE / "cache"


def cache_name(entry: dict) -> str:
    """The file name an entry is cached under: its id and the extension of its format."""
    ext = ".keras" if entry["format"] == "keras-v3-archive" else ".h5"
    return entry["id"] + ext


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def urls_for(entry: dict) -> list[str]:
    if entry.get("url"):
        return [entry["url"]]
    path = urllib.parse.quote(entry["path"])
    return [
        f"https://raw.githubusercontent.com/{entry['repo']}/{entry['commit']}/{path}",
        f"https://github.com/{entry['repo']}/raw/{entry['commit']}/{path}",
    ]


def download(entry: dict, dest: Path, timeout: float) -> None:
    errors = []
    for url in urls_for(entry):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
            if dest.stat().st_size and dest.read_bytes()[:40].startswith(b"version https://git-lfs"):
                raise OSError("got a Git LFS pointer, not the file")
            return
        except OSError as exc:  # URLError and HTTPError are OSErrors
            errors.append(f"{url}: {exc}")
    raise OSError("; ".join(errors))


def mirror_gitdir(root: Path, repo: str) -> Path:
    base = root / repo.replace("/", "+")
    for cand in (base / "repo" / ".git", base / "repo", base):
        if (cand / "objects").is_dir():
            return cand
    raise OSError(f"no git mirror of {repo} under {root}")


def copy_from_mirror(entry: dict, root: Path, dest: Path) -> None:
    gitdir = mirror_gitdir(root, entry["repo"])
    with open(dest, "wb") as out:
        proc = subprocess.run(
            ["git", "--git-dir", str(gitdir), "cat-file", "blob", f"{entry['commit']}:{entry['path']}"],
            stdout=out, stderr=subprocess.PIPE,
        )
    if proc.returncode:
        raise OSError(proc.stderr.decode(errors="replace").strip() or "git cat-file failed")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--from-mirror", type=Path, metavar="DIR",
                    help="copy from local bare git mirrors DIR/<owner>+<name>/repo instead of downloading")
    ap.add_argument("--split", choices=["dev", "held-out"], help="only this split")
    ap.add_argument("--ids", help="comma-separated entry ids")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)

    entries = json.loads(args.manifest.read_text())["entries"]
    if args.split:
        entries = [e for e in entries if e["split"] == args.split]
    if args.ids:
        wanted = set(args.ids.split(","))
        unknown = wanted - {e["id"] for e in entries}
        if unknown:
            ap.error(f"unknown ids: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e["id"] in wanted]

    args.cache.mkdir(parents=True, exist_ok=True)
    got = skipped = failed = 0
    for e in entries:
        dest = args.cache / cache_name(e)
        if dest.exists() and sha256_of(dest) == e["sha256"]:
            skipped += 1
            continue
        fd, tmp = tempfile.mkstemp(dir=args.cache, prefix=".part-")
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            if args.from_mirror:
                copy_from_mirror(e, args.from_mirror, tmp_path)
            else:
                download(e, tmp_path, args.timeout)
            digest = sha256_of(tmp_path)
            if digest != e["sha256"]:
                raise OSError(f"sha256 mismatch: got {digest}, manifest says {e['sha256']}")
            os.replace(tmp_path, dest)
            got += 1
            print(f"ok      {e['id']}", file=sys.stderr)
        except OSError as exc:
            failed += 1
            print(f"FAILED  {e['id']}: {exc}", file=sys.stderr)
        finally:
            if tmp_path.exists():
                tmp_path.unlink()
    print(f"{got} fetched, {skipped} already cached, {failed} failed ({len(entries)} entries)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
