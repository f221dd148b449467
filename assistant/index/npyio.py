"""Reading .npy files safely from several threads.

np.load parses each .npy header with ast.literal_eval, and CPython 3.11 can raise "SystemError: AST constructor
recursion depth mismatch" when two threads build ASTs at once (python/cpython#106905; seen in
tests/robustness/test_concurrency.py: a reader loading while a build or an update reads the previous index).
Every .npy header read in the package holds this one lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

HEADER_LOCK = threading.Lock()


def load(path: Path, *, mmap: bool = True) -> np.ndarray:
    """np.load without pickles, memory-mapped unless `mmap` is False, under HEADER_LOCK.

    A memory map reads only the header while the lock is held; a full read (small arrays only, in this package)
    holds it for the data too, which is simpler than parsing the header twice.
    """
    with HEADER_LOCK:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
