"""datatrove's URL block lists as sorted 64-bit hashes on disk, loaded in milliseconds.

Why: datatrove's ``URLFilter`` reads its bundled lists into Python sets in every worker: 4.56
million blocked domains and 20 thousand URLs cost 3.4 CPU-seconds and about 400 MB per worker
process, the largest part of the curate stage's fixed start-up after spaCy. Here each of the
two big lists is hashed once per machine (xxh64 of the stripped line, as datatrove keeps it)
into a sorted ``uint64`` array saved beside datatrove's own extracted copy; later processes
memory-map it and test membership with a binary search. A false positive needs a 64-bit
collision with one of 4.6 million entries: about 2.5e-13 per looked-up domain. The small lists
(banned words, subwords) stay datatrove's sets and automaton.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

ARCHIVE = "url_filterblacklistsv0_3_0.tar.gz"


def extracted_folder() -> Path:
    """Where datatrove's URLFilter extracts its bundled block lists (extracting them if needed)."""
    import tarfile

    from datatrove.io import safely_create_file
    from datatrove.utils._import_utils import ASSETS_PATH
    from huggingface_hub import cached_assets_path

    folder = cached_assets_path(library_name="datatrove", namespace="filters", subfolder="url_filter")

    def extract():
        with tarfile.open(os.path.join(ASSETS_PATH, ARCHIVE), "r:gz") as tar:
            tar.extractall(folder)

    safely_create_file(os.path.join(folder, ARCHIVE), extract)
    return Path(folder)


def _hash(s: str) -> int:
    import xxhash

    return xxhash.xxh64_intdigest(s.encode("utf-8", "surrogatepass"))


class HashedList:
    """``x in lst`` for a datatrove list file (``parse_list(do_normalize=False)``) plus extra strings."""

    def __init__(self, hashes: np.ndarray, extra=()):
        self.hashes, self.extra = hashes, set(extra)

    @classmethod
    def load(cls, folder: Path, name: str, extra=()) -> "HashedList":
        src = folder / name
        st = src.stat()
        cached = folder / f"{name}.{st.st_size}.{int(st.st_mtime)}.xxh64.npy"
        if not cached.exists():
            with open(src) as f:
                hashes = np.unique(np.fromiter((_hash(x.strip()) for x in f if x[0] != "#"), dtype=np.uint64))
            tmp = cached.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, hashes)
            os.replace(tmp, cached)
        return cls(np.load(cached, mmap_mode="r"), extra)

    def __contains__(self, item) -> bool:
        if not isinstance(item, str):
            return False
        if item in self.extra:
            return True
        h = np.uint64(_hash(item))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h

    def __len__(self) -> int:
        return len(self.hashes) + len(self.extra)
