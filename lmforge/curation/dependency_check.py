"""datatrove's dependency check of each pipeline step, without reading every installed package.

Why: datatrove checks a step's required packages whenever the step is built *and* whenever a
worker unpickles it (``PipelineStep.__new__``). Its distribution check (``datatrove.utils.
_import_utils._is_distribution_available``) walks ``importlib.metadata.distributions()`` and
parses the METADATA file of every installed distribution, once per required package and
process: about 2,100 e-mail-header parses in this venv, 1.5-2 CPU-seconds of the curate
stage's start-up, again in every worker. ``importlib.metadata.distribution(name)`` finds the
one distribution by its name. Same answer: True when the distribution is installed, None when
not (datatrove's own values). The modules that define lmforge's datatrove steps import this
module, so it is in place before any step is built or unpickled.
"""
from __future__ import annotations

import importlib.metadata
from functools import lru_cache

from datatrove.utils import _import_utils


@lru_cache
def is_distribution_available(distribution_name: str) -> bool | None:
    try:
        importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return True


_import_utils._is_distribution_available = is_distribution_available
