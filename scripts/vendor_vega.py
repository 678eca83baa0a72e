"""Build the offline HTML template for `dvc plots show/diff`.

DVC's plot pages load vega, vega-lite and vega-embed from a CDN and are blank on
a machine without internet. This script fetches pinned releases with
``npm pack`` (the npm registry is reachable where the project is developed),
inlines their minified UMD builds into ``.dvc/plots/offline.html`` and writes
their licences beside it. The result is committed; ``.dvc/config`` names it as
``plots.html_template``, so every ``dvc plots`` page renders offline.

Run from the repository root: ``python scripts/vendor_vega.py``.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {  # DVC's vega-lite v5 specs need vega 5 / vega-lite 5 / vega-embed 6
    "vega": ("5.33.1", "build/vega.min.js"),
    "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
    "vega-embed": ("6.29.0", "build/vega-embed.min.js"),
}
OUT_DIR = Path(".dvc/plots")
TEMPLATE = OUT_DIR / "offline.html"
LICENSES = OUT_DIR / "LICENSES.md"
# dvc-render fills {plot_divs} and {refresh_tag}; leaving out its scripts
# placeholder keeps it from adding the CDN <script src=...> tags.
HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Offline template: %s inlined (BSD-3-Clause, see LICENSES.md). Built by scripts/vendor_vega.py. -->
"""
TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _fetch(workdir: Path) -> dict[str, tuple[str, str | None]]:
    """Return {package: (minified code, licence text or None)}."""
    specs = [f"{name}@{ver}" for name, (ver, _) in PACKAGES.items()]
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    out = {}
    for name, (ver, member) in PACKAGES.items():
        with tarfile.open(workdir / f"{name}-{ver}.tgz") as tar:
            code = tar.extractfile(f"package/{member}").read().decode("utf-8")
            # no source-map fetches from an offline page
            code = re.sub(r"^//# sourceMappingURL=.*$", "", code, flags=re.M).rstrip()
            try:
                lic = tar.extractfile("package/LICENSE").read().decode("utf-8")
            except KeyError:
                lic = None
        for bad in ("</script", "<!--"):
            if bad in code:
                raise SystemExit(f"{name}@{ver}: {member} contains {bad!r}; cannot inline it")
        out[name] = (code, lic)
    return out


def build() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pkgs = _fetch(Path(tmp))
    names = ", ".join(f"{n} {PACKAGES[n][0]}" for n in PACKAGES)
    parts = [HEAD % names]
    for name, (code, _) in pkgs.items():
        parts.append(f'    <script type="text/javascript">/* {name} {PACKAGES[name][0]} */\n{code}\n    </script>\n')
    parts.append(TAIL)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    tmp_t = TEMPLATE.with_suffix(".html.tmp")
    tmp_t.write_text("".join(parts), encoding="utf-8")
    tmp_t.replace(TEMPLATE)

    lic = ["# Licences of the scripts inlined in offline.html\n"]
    for name, (_, text) in pkgs.items():
        ver = PACKAGES[name][0]
        lic.append(f"\n## {name} {ver} (BSD-3-Clause), https://github.com/vega/{name}\n")
        lic.append("\n" + (text.strip() if text else
                           f"The npm package {name}@{ver} declares BSD-3-Clause in package.json but ships no "
                           "LICENSE file; its repository's licence is the University of Washington "
                           "Interactive Data Lab BSD-3-Clause text, the same as vega-lite's below.") + "\n")
    tmp_l = LICENSES.with_suffix(".md.tmp")
    tmp_l.write_text("".join(lic), encoding="utf-8")
    tmp_l.replace(LICENSES)
    print(f"wrote {TEMPLATE} ({TEMPLATE.stat().st_size / 1e6:.2f} MB) and {LICENSES}")


if __name__ == "__main__":
    if not Path("dvc.yaml").exists():
        sys.exit("run from the repository root (no dvc.yaml here)")
    build()
