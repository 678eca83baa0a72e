"""A small, inspectable safety classifier for the gateway's request log.

Every logged request carries a verdict so that unsafe requests can be blocked at
the door and so that harvest never turns a request with personal data or a
harmful ask into training data. Rules, not a model: a regex blocklist of clearly
harmful requests (weapons, malware, intrusion, self-harm methods, abuse of
minors) and detectors for personal data (e-mail, phone number, payment card
checked with Luhn, IBAN checked mod 97, US SSN, IPv4 address). Rules are cheap
(microseconds per request), never download anything and say exactly which rule
fired; their limits (English-only blocklist, no paraphrase detection) are the
price of that.

Verdicts: ``block`` (a blocklist category matched the request), ``pii`` (personal
data in the request or the completion), ``allow``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

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

_EMAIL = re.compile(r"\b[\w.+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}"
                    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?!\d)(?![ .-]\d)")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def find_pii(text: str) -> list[str]:
    """Kinds of personal data found in ``text`` (sorted, unique)."""
    found = set()
    if _EMAIL.search(text):
        found.add("email")
    if _SSN.search(text):
        found.add("ssn")
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.add("payment_card")
            break
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group()):
            found.add("iban")
            break
    if _PHONE.search(text):
        found.add("phone")
    if _IPV4.search(text):
        found.add("ip_address")
    return sorted(found)


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


def classify(prompt: str, completion: str | None = None) -> Verdict:
    """Verdict for a request (and, once known, its completion)."""
    unsafe = find_unsafe(prompt)
    pii = sorted(set(find_pii(prompt)) | set(find_pii(completion or "")))
    if unsafe:
        return Verdict("block", unsafe, pii)
    if pii:
        return Verdict("pii", [], pii)
    return Verdict("allow", [], [])
