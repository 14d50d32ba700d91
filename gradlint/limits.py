"""Resource limits for reading one model file: how much time, memory and data a file may cost
before gradlint refuses it with GL001.

Model files come from hubs, pull requests and CI artifacts, so every limit stops the work
before it starts where it can (sizes are checked against what the file declares and what it
really stores before anything is inflated or read), and the per-file time and memory limits
catch whatever is left. The defaults sit far above legitimate work, each with the
measurement behind it:

- `timeout`: 300 s per file. The slowest legitimate file measured, a 10,000-layer chain with
  weight statistics, takes 16 s (bench/bench_static.py).
- `max_memory_mb`: 1,024 MB of address space per file. VGG16 (553 MB, one 411 MB kernel)
  peaks at 67 MB resident and the 10,000-layer chain at 219 MB; numpy and h5py alone map
  150 MB; ResNet50, VGG16 and a 1,000-layer chain all read within 512 MB. A corrupted
  attribute that makes HDF5 allocate gigabytes fails at once instead.
- `max_config_mb`: 64 MB of model configuration. ResNet50's `config.json` is 0.17 MB, a
  1,000-layer chain's 0.53 MB.
- `max_inflate_ratio`: 100. Keras stores archive members and weights uncompressed (ratio 1);
  float weights deflate to about 0.9 of their size. Past `inflate_floor_mb` (16 MB), data
  that claims to expand more than 100-fold is a decompression bomb.
- `max_chunk_mb`: 64 MB per HDF5 chunk, the most HDF5 inflates at once for one read. Keras
  writes contiguous datasets, which have no chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

MB = 1 << 20
# Importing Keras and TensorFlow in a worker, which `--custom-objects` needs to rebuild a
# model class's graph (a keras-hub backbone), maps about 2.5 GB of address space (measured:
# VmPeak 2,473 MB for keras_hub and a tiny BERT; 2,048 MB fails, 3,072 MB works), so such
# a run's workers get at least this much, whatever `max_memory_mb` says.
KERAS_WORKER_MEMORY_MB = 4096


def worker_memory_mb(limits: "Limits", imports_keras: bool) -> int:
    """The address-space limit of a run's workers: `max_memory_mb`, raised to
    `KERAS_WORKER_MEMORY_MB` when they import Keras."""
    return max(limits.max_memory_mb, KERAS_WORKER_MEMORY_MB) if imports_keras \
        else limits.max_memory_mb


@dataclass(frozen=True)
class Limits:
    timeout: float = 300.0
    max_memory_mb: int = 1024
    max_config_mb: int = 64
    max_inflate_ratio: int = 100
    inflate_floor_mb: int = 16
    max_chunk_mb: int = 64

    @property
    def config_bytes(self) -> int:
        return self.max_config_mb * MB

    @property
    def chunk_bytes(self) -> int:
        return self.max_chunk_mb * MB

    def inflated_bytes_allowed(self, stored: int) -> int:
        """The most that `stored` bytes may expand to."""
        return max(self.inflate_floor_mb * MB, self.max_inflate_ratio * max(stored, 0))

    def with_values(self, values: dict[str, Any]) -> "Limits":
        return replace(self, **values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# The configuration file's keys (`[tool.gradlint.limits]`) and the field each sets.
LIMIT_KEYS = {
    "timeout": "timeout",
    "max-memory-mb": "max_memory_mb",
    "max-config-mb": "max_config_mb",
    "max-inflate-ratio": "max_inflate_ratio",
    "inflate-floor-mb": "inflate_floor_mb",
    "max-chunk-mb": "max_chunk_mb",
}

DEFAULT_LIMITS = Limits()
