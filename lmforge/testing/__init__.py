"""Fixtures the tests and the benchmarks share: tiny models, the sample crawl's pages, process starters.

Why here and not in tests/support: ``bench/`` measures the same tiny models and starts the
same processes as the tests, and a benchmark must not reach into the test tree through
``sys.path``. These modules only work in a checkout (they read ``data/`` and start
``python -m lmforge...`` from the repository root); no stage imports them, and the floor
test keeps them on the top floor, above every room they build on. Test-only helpers stay in
``tests/support``.
"""
