"""Real instruction pairs from documentation installed on the machine.

No package ships instruction data, but Debian and the Python standard library ship
plenty of questions with answers: perlfaq (``perl-doc``), the Python FAQ
(``python3.11-doc``), man-page NAME/DESCRIPTION lines and stdlib docstrings. Each
reader below is a small self-reporting step: it yields ``{prompt, response, source,
licence, origin}`` rows and counts what it kept and why it skipped the rest, so the
build script can print a datatrove-like table. Licences are read from what ships
with the material (perlfaq's own notice, the PSF licence, each man page's Debian
``copyright`` file); a page whose licence cannot be found is skipped, not guessed.
"""
from __future__ import annotations

import collections
import glob
import gzip
import hashlib
import html
import importlib
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Iterator

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
PSF = "PSF-2.0"
PERL = "Artistic-1.0-Perl OR GPL-1.0-or-later"


class Counter:
    """Kept/skipped counts of one step, by reason."""

    def __init__(self, name: str):
        self.name = name
        self.stats: collections.Counter = collections.Counter()

    def skip(self, reason: str) -> None:
        self.stats[f"skipped:{reason}"] += 1

    def keep(self) -> None:
        self.stats["kept"] += 1

    def row(self) -> dict:
        return {"step": self.name, **self.stats}


def _clean(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _ok(stats: Counter, prompt: str, response: str, max_chars: int) -> bool:
    """Shared filters: nothing empty, nothing too long, no email address."""
    if not prompt or len(response) < 20:
        stats.skip("too_short")
        return False
    if len(response) > max_chars or len(prompt) > 300:
        stats.skip("too_long")
        return False
    if EMAIL.search(prompt) or EMAIL.search(response):
        stats.skip("email")
        return False
    stats.keep()
    return True


# ---------------------------------------------------------------- perlfaq (POD)
def _pod_to_text(pod: str) -> str:
    pod = re.sub(r"^=(over|back|item|begin|end|for)\b.*$", "", pod, flags=re.M)
    pod = re.sub(r"X<[^<>]*>", "", pod)  # index entries are not prose
    pod = re.sub(r"^\s*\(contributed by [^)]*\)\s*$", "", pod, flags=re.M)
    for _ in range(3):  # nested formatting codes: B<C<x>> etc.
        pod = re.sub(r"L<([^<>|]*\|)?([^<>]*)>", lambda m: m.group(2).strip('"'), pod)
        pod = re.sub(r"[BCIFSE]<<+\s*(.*?)\s*>+>", r"\1", pod)
        pod = re.sub(r"[BCIFSZ]<([^<>]*)>", r"\1", pod)
    pod = pod.replace("E<lt>", "<").replace("E<gt>", ">")
    return _clean(pod)


def perlfaq(pod_dir: str, max_chars: int, stats: Counter) -> Iterator[dict]:
    files = sorted(glob.glob(os.path.join(pod_dir, "perlfaq[1-9].pod")))
    if not files:
        raise FileNotFoundError(f"{pod_dir}: no perlfaq[1-9].pod (install Debian perl-doc)")
    for path in files:
        text = Path(path).read_text(errors="replace")
        text = text.split("=head1 AUTHOR", 1)[0]
        for block in re.split(r"^=head2 ", text, flags=re.M)[1:]:
            question, _, body = block.partition("\n")
            body = re.split(r"^=head1 ", body, flags=re.M)[0]
            prompt, response = _pod_to_text(question), _pod_to_text(body)
            if _ok(stats, prompt, response, max_chars):
                yield dict(prompt=prompt, response=response, source="perlfaq", licence=PERL,
                           origin=f"{path}#{prompt[:60]}")


# ---------------------------------------------------------------- Python FAQ (HTML)
def _html_text(fragment: str) -> str:
    fragment = re.sub(r"<pre>(.*?)</pre>", lambda m: "\n" + m.group(1) + "\n", fragment, flags=re.S)
    fragment = re.sub(r"</p>|<br ?/?>|</li>", "\n", fragment)
    return _clean(html.unescape(re.sub(r"<[^>]+>", "", fragment)))


def python_faq(faq_dir: str, max_chars: int, stats: Counter) -> Iterator[dict]:
    files = sorted(set(glob.glob(os.path.join(faq_dir, "*.html"))) - {os.path.join(faq_dir, "index.html")})
    if not files:
        raise FileNotFoundError(f"{faq_dir}: no FAQ pages (install Debian python3.11-doc)")
    pat = re.compile(r'<section id="([^"]+)">\s*(?:<span[^>]*></span>)*<h3>(.*?)</h3>(.*?)(?=<section|</section>)', re.S)
    for path in files:
        page = Path(path).read_text(errors="replace")
        for sec_id, head, body in pat.findall(page):
            prompt = _html_text(re.sub(r'<a class="headerlink".*?</a>', "", head))
            response = _html_text(body)
            if _ok(stats, prompt, response, max_chars):
                yield dict(prompt=prompt, response=response, source="python_faq", licence=PSF,
                           origin=f"{path}#{sec_id}")


# ---------------------------------------------------------------- man pages (roff)
def _roff_text(lines: list[str]) -> str:
    out = []
    for line in lines:
        if line.startswith((".B ", ".I ", ".BR ", ".IR ", ".BI ", ".RB ", ".IB ")):
            line = line.split(" ", 1)[1].replace('"', "")
        elif line.startswith((".", "'")):
            continue
        out.append(line)
    text = " ".join(out)
    text = re.sub(r"\\f(\[[^\]]*\]|.)", "", text)
    text = text.replace("\\-", "-").replace("\\(aq", "'").replace("\\(em", "-").replace("\\e", "\\")
    text = re.sub(r"\\\(..|\\[&/,:|^ ]|\\\*.", "", text)
    return re.sub(r"\s+", " ", text).strip()


def _sections(page: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in page.splitlines():
        m = re.match(r'^\.S[Hh]\s+"?([^"]+)"?', line)
        if m:
            current = m.group(1).strip().upper()
            sections.setdefault(current, [])
        elif current:
            sections[current].append(line)
    return sections


def package_of_files(info_dir: str = "/var/lib/dpkg/info") -> dict[str, str]:
    owner = {}
    for lst in glob.glob(os.path.join(info_dir, "*.list")):
        pkg = Path(lst).stem.split(":")[0]
        for line in Path(lst).read_text(errors="replace").splitlines():
            if "/man/" in line:
                owner[line] = pkg
    return owner


def debian_licence(pkg: str, doc_root: str = "/usr/share/doc") -> str | None:
    """First ``License:`` of the package's machine-readable copyright file."""
    path = Path(doc_root) / pkg / "copyright"
    if not path.exists():
        return None
    m = re.search(r"^License:\s*(\S.*)$", path.read_text(errors="replace"), flags=re.M)
    return m.group(1).strip() if m else None


def man_pages(man_dir: str, limit: int, max_chars: int, stats: Counter) -> Iterator[dict]:
    owners = package_of_files()
    paths = glob.glob(os.path.join(man_dir, "man1", "*.1.gz")) + glob.glob(os.path.join(man_dir, "man8", "*.8.gz"))
    paths.sort(key=lambda p: hashlib.sha1(os.path.basename(p).encode()).hexdigest())  # spread, not a-z
    if not paths:
        raise FileNotFoundError(f"{man_dir}: no man1/man8 pages")
    seen: set[str] = set()
    n = 0
    for path in paths:
        if n >= limit:
            break
        real = os.path.realpath(path)
        if os.path.islink(path) or real in seen:
            stats.skip("alias")
            continue
        seen.add(real)
        pkg = owners.get(path) or owners.get(real)
        licence = debian_licence(pkg) if pkg else None
        if not licence:
            stats.skip("no_licence")
            continue
        secs = man_sections(path)
        if secs is None:
            stats.skip("unreadable")
            continue
        parsed = name_line(secs)
        if not parsed:
            stats.skip("no_name_line")
            continue
        cmd, what = parsed
        desc = _roff_text(_first_paragraph(secs.get("DESCRIPTION", [])))
        desc = " ".join(re.split(r"(?<=[.!?])\s+", desc)[:3])
        response = f"`{cmd}` is a command-line program: {what}." + (f" {desc}" if desc else "")
        if _ok(stats, f"What does `{cmd}` do?", response, max_chars):
            n += 1
            yield dict(prompt=f"What does `{cmd}` do?", response=response, source="manpages",
                       licence=f"{licence} (Debian package {pkg})", origin=path)


def name_line(secs: dict[str, list[str]]) -> tuple[str, str] | None:
    """(command, one-line description) from a man page's NAME section, or None."""
    m = re.match(r"^([\w.+-]+)(?:,\s*[\w.+-]+)*\s+-+\s+(.+)$", _roff_text(secs.get("NAME", [])))
    return (m.group(1), m.group(2).rstrip(".")) if m else None


def man_sections(path: str) -> dict[str, list[str]] | None:
    """The sections of one gzip man page, or None when it cannot be read."""
    try:
        return _sections(gzip.open(path, "rt", errors="replace").read())
    except OSError:
        return None


def _first_paragraph(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if re.match(r"^\.(PP|P|LP|TP|IP|SS|HP|sp)\b", line) or not line.strip():
            if any(not x.startswith((".", "'")) for x in out):
                break
            continue
        out.append(line)
    return out


# ---------------------------------------------------------------- stdlib docstrings
def docstrings(modules: list[str], limit: int, max_chars: int, stats: Counter) -> Iterator[dict]:
    n = 0
    for modname in modules:
        mod = importlib.import_module(modname)
        for name, obj in sorted(vars(mod).items()):
            if n >= limit:
                return
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) not in (modname, modname.replace(".", "")) and \
                    not (getattr(obj, "__module__", "") or "").lstrip("_").startswith(modname.split(".")[0]):
                stats.skip("reexport")
                continue
            doc = inspect.getdoc(obj) or ""
            para = doc.split("\n\n")[0].strip()
            if para.startswith(name + "(") or "\n" in para and para.split("\n")[0].endswith(")"):
                para = "\n".join(doc.split("\n\n")[:2]).strip()  # builtins open with a signature line
            kind = "class" if inspect.isclass(obj) else "function"
            prompt = f"What does `{modname}.{name}` do?"
            response = f"`{modname}.{name}` is a {kind} in the Python standard library. {_clean(para)}"
            if _ok(stats, prompt, response, max_chars):
                n += 1
                yield dict(prompt=prompt, response=response, source="docstrings", licence=PSF,
                           origin=f"python{sys.version_info[0]}.{sys.version_info[1]}:{modname}.{name}")
