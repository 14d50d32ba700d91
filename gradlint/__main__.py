"""`python -m gradlint`. Python puts the working directory first on `sys.path` for `-m`; a
linted repository is untrusted, so a planted `tf_keras.py` or `h5py.py` there must never be
imported in place of the real one. gradlint itself is already imported by now."""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from gradlint.cli import run  # noqa: E402

run()
