"""datasketch is imported without scipy.integrate (curate start-up), and still works in full."""
from __future__ import annotations

import subprocess
import sys

from lmforge.testing.curate import REPO

SCRIPT = r"""
import sys
from lmforge.curation.dedup import import_datasketch
ds = import_datasketch()
print("integrate" , "scipy.integrate" in sys.modules, "scipy.optimize" in sys.modules)
lsh = ds.MinHashLSH(num_perm=128, params=(16, 8))
m = ds.MinHash(num_perm=128); m.update_batch([b"a", b"b"])
lsh.insert("x", m)
print("query", lsh.query(m))
print("optimal", ds.MinHashLSH(threshold=0.8, num_perm=128).b)  # the stand-in quad calls scipy's
import scipy.integrate
print("real", scipy.integrate.__name__, hasattr(scipy.integrate, "solve_ivp"))
"""


def test_datasketch_loads_without_scipy_integrate_and_keeps_every_function():
    p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[0] == "integrate False False"
    assert lines[1] == "query ['x']"
    assert lines[2].startswith("optimal ") and int(lines[2].split()[1]) > 0
    assert lines[3] == "real scipy.integrate True"
