"""A small, inspectable safety classifier for the gateway's request log.

Every logged request carries a verdict so that unsafe requests can be blocked at
the door and so that harvest never turns a request with personal data or a
harmful ask into training data. Rules, not a model: a regex blocklist of clearly
harmful requests (weapons, malware, intrusion, self-harm methods, abuse of
minors) and the shared personal-data detector (``lmforge.pii``: Presidio's pattern
recognizers and ``phonenumbers``, with their checksum checks). Rules are cheap
(milliseconds per request), never download anything and say exactly which rule
fired; their limits (English-only blocklist, no paraphrase detection) are the
price of that. Every message the model will read is classified (``classify_messages``):
system prompt, earlier turns and an assistant prefill, not only the last user turn.

Verdicts: ``block`` (a blocklist category matched the request), ``pii`` (personal
data in the request or the completion), ``allow``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from lmforge.pii import find_pii

_I = re.IGNORECASE

BLOCKLIST: dict[str, re.Pattern] = {
    "weapons": re.compile(
        r"\b(how (do|can|to) (i |you |we )?)?(make|build|synthesi[sz]e|assemble|manufacture)\b.{0,40}"
        r"\b(bomb|explosive|pipe ?bomb|nerve agent|sarin|ricin|bioweapon|chemical weapon|"
        r"ghost gun|napalm|thermite charge)", _I),
    "malware": re.compile(
        r"\b(write|create|build|code|make)\b.{0,40}\b(ransomware|keylogger|botnet|rootkit|"
        r"computer virus|worm that spreads|credential stealer|info ?stealer)", _I),
    "intrusion": re.compile(
        r"\b(hack|break) into\b.{0,40}\b(account|wi-?fi|network|server|phone|email)|"
        r"\bsteal\b.{0,30}\b(passwords?|credentials|credit card)", _I),
    "self_harm": re.compile(
        r"\b(how (do|can|to) (i )?)(kill|hurt|harm) (myself|my self)\b|"
        r"\bbest way to (commit )?suicide\b|\blethal dose\b.{0,30}\b(to die|kill myself)", _I),
    "minors": re.compile(r"\b(sexual|explicit|nude)\b.{0,40}\b(child|minor|underage|kid)s?\b", _I),
}

def find_unsafe(text: str) -> list[str]:
    """Blocklist categories that ``text`` matches (sorted)."""
    return sorted(name for name, rx in BLOCKLIST.items() if rx.search(text))


@dataclass
class Verdict:
    verdict: str  # "allow" | "pii" | "block"
    categories: list[str] = field(default_factory=list)
    pii: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "categories": self.categories, "pii": self.pii}


def classify(prompt: str, completion: str | None = None, context: tuple[str, ...] = ()) -> Verdict:
    """Verdict for a request (and, once known, its completion); ``context`` holds the other texts
    the model reads (system prompt, earlier turns, an assistant prefill), screened like the prompt."""
    texts = tuple(dict.fromkeys((prompt, *context)))  # each text once
    unsafe = sorted(set().union(*(find_unsafe(t) for t in texts)))
    pii = sorted(set().union(*(find_pii(t) for t in (*texts, completion or ""))))
    if unsafe:
        return Verdict("block", unsafe, pii)
    if pii:
        return Verdict("pii", [], pii)
    return Verdict("allow", [], [])
