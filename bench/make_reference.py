"""A runnable copy of an earlier commit's gradlint, for `bench_static.py --reference`.

    python bench/make_reference.py c2b5861 /tmp/reference
    python bench/bench_static.py --models resnet50 --skip-tf --repeat 15 \\
        --reference /tmp/reference/gradlint-reference

Checks the commit out as a `git worktree` in DIR, links `gradlint/rules` and
`gradlint/templates` to the checkout's `rules/` and `templates/` (the installed package maps
them there; see pyproject.toml), and writes DIR/gradlint-reference, a command that runs that
checkout's command line with this Python, its own tree first on `sys.path`. Nothing is
installed: the dependencies are this environment's. `git worktree remove --force DIR` removes
it (the links and the launcher are untracked files).
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAUNCHER = """#!{python}
import sys
sys.path.insert(0, {tree!r})
from gradlint import cli
sys.exit((getattr(cli, "run", None) or cli.main)())
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the commit to check out (any git revision)")
    parser.add_argument("directory", help="where to put the worktree (must not exist)")
    args = parser.parse_args(argv)
    tree = os.path.abspath(args.directory)
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", tree, args.commit],
                   check=True)
    for name in ("rules", "templates"):
        link = os.path.join(tree, "gradlint", name)
        if not os.path.exists(link):
            os.symlink(os.path.join("..", name), link)
    launcher = os.path.join(tree, "gradlint-reference")
    with open(launcher, "w", encoding="utf-8") as handle:
        handle.write(LAUNCHER.format(python=sys.executable, tree=tree))
    os.chmod(launcher, os.stat(launcher).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    print(launcher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
