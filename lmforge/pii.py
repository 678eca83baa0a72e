"""Personal-data detection, shared by the gateway's safety verdicts and feedback harvest.

Personal data must never reach training data, and what the gateway calls personal
data must be what harvest drops; so the detector lives here, on the ground floor,
and both ``lmforge.gateway.safety`` and ``lmforge.feedback.harvest`` import it
downward (feedback no longer imports the gateway).

Regexes grown by hand missed whole classes (phones without separators or in
national layouts, "name [at] domain [dot] com", IPv6, addresses, national IDs), so
the detectors are maintained ones:

* Microsoft Presidio's pattern recognizers, called one by one, pattern-only: no
  ``AnalyzerEngine``, hence no NLP engine and no spaCy model is ever loaded or
  downloaded. Their checksum validators are kept (Luhn for cards and Canadian SINs,
  mod 97 for IBANs, Verhoeff for Aadhaar, mod 11 for NHS numbers, the check letters
  of Spanish NIFs and Italian fiscal codes, PESEL, personnummer, German tax IDs);
* ``phonenumbers`` (Google's libphonenumber metadata) for phones in every national
  layout of the regions in ``PHONE_REGIONS`` and in international ``+`` form for all;
* e-mail checked against the public-suffix list that ``tldextract`` ships (never
  fetched: the default extractor would go to the network on first use), after
  undoing the usual obfuscations ("[at]", "(dot)", " at ... dot ");
* postal addresses, which Presidio finds only with an NLP model, as street-line
  patterns (number + street word, in English, German, French, Spanish and Italian
  orders) plus postcode-with-town lines, written as Presidio ``Pattern`` objects.

Recall and false positives on a labelled set of formats in the wild:
tests/gateway/data/pii_wild.jsonl, measured by bench/bench_pii.py (figures in the log).
"""
from __future__ import annotations

import functools
import re
import sys

_KINDS = {  # Presidio entity -> the kind named in verdicts and harvest stats
    "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban", "US_SSN": "ssn", "IP_ADDRESS": "ip_address", "POSTAL_ADDRESS": "postal_address",
}
_SAMPLE_SSNS = ("123456789", "987654320", "078051120")
MIN_SCORE = 0.5  # Presidio's "medium" patterns and up; a passed checksum scores 1.0
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "CA", "ES", "IT", "NL", "BR", "JP", "IE",
                 "CH", "AT", "BE", "SE", "PL", "MX", "ZA")

# "name [at] domain [dot] com", "name(at)domain(dot)com", "name at domain dot com"
_OB_AT = re.compile(r"\s*[\[\(\{<]\s*(?:at|@)\s*[\]\)\}>]\s*|\s+(?:at|AT)\s+(?=[\w-]+(?:\s*[\[\(\{<]?\s*"
                    r"(?:dot|DOT)\s*[\]\)\}>]?\s*[\w-]+)+)", re.IGNORECASE)
_OB_DOT = re.compile(r"\s*[\[\(\{<]\s*(?:dot|\.)\s*[\]\)\}>]\s*|(?<=[\w@])\s+(?:dot|DOT)\s+(?=\w)")

_STREET = (r"(?:street|st\.?|avenue|ave\.?|road|rd\.?|boulevard|blvd\.?|lane|ln\.?|drive|dr\.?|court|ct\.?|"
           r"place|pl\.?|square|sq\.?|terrace|parkway|pkwy\.?|highway|hwy\.?|way|close|crescent|row|mews|"
           r"gardens|hill|walk)")
_ADDRESS_PATTERNS = [
    # 1600 Amphitheatre Parkway / 221B Baker Street / 10 Downing St
    (r"\b\d{1,5}[A-Za-z]?,?\s+(?:[A-Z][\w'.-]*\s+){1,4}" + _STREET + r"\b", 0.6),
    # Musterstraße 12 / Hauptstr. 5a / Lindenweg 3 / Kirchgasse 7
    (r"\b[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm)\s+\d{1,4}[a-z]?\b", 0.6),
    # 12 rue de la Paix / 5 avenue des Champs / Calle Mayor 10 / Via Roma 1
    (r"\b\d{1,4},?\s+(?:rue|avenue|boulevard|bd|place|chemin|impasse|allée)\s+(?:\w+\s+){0,3}\w+", 0.6),
    (r"\b(?:calle|avenida|paseo|plaza|via|viale|piazza|corso)\s+(?:[\wáéíóúàèìòù]+\s+){0,3}\d{1,4}\b", 0.6),
    # Springfield, IL 62704 / Mountain View, CA 94043-1351
    (r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)*,\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b", 0.6),
    # PO Box 1234
    (r"\bP\.?\s?O\.?\s+Box\s+\d+\b", 0.6),
    # London SW1A 2AA / SW1A 2AA London (a UK postcode next to a capitalised town)
    (r"\b[A-Z][a-z]+,?\s+[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2},?\s+[A-Z][a-z]+", 0.6),
    # 10115 Berlin / 75002 Paris (after a street line's comma)
    (r",\s+\d{4,5}\s+[A-ZÄÖÜ][a-zäöüéè]+", 0.6),
]


def _offline_domains():
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # the snapshot it ships


def _import_presidio():
    """Import presidio without torch and transformers, which its package init pulls in for the NER
    recognizers not used here (RSS: +510 MB with them, +120 MB without). They are hidden only
    for the import, and only if nothing imported them before; presidio guards those imports."""
    hidden = [m for m in ("torch", "transformers") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # `import torch` raises ImportError meanwhile
    try:
        import presidio_analyzer.predefined_recognizers
    finally:
        for m in hidden:
            if sys.modules.get(m) is None:
                del sys.modules[m]
    return presidio_analyzer


@functools.lru_cache(maxsize=1)
def _recognizers() -> tuple:
    """Presidio's recognizers, built once (the import takes a few seconds; servers warm it at start)."""
    _import_presidio()
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        AuTfnRecognizer, CaSinRecognizer, CreditCardRecognizer, DeTaxIdRecognizer, EmailRecognizer,
        EsNieRecognizer, EsNifRecognizer, FiPersonalIdentityCodeRecognizer, IbanRecognizer,
        InAadhaarRecognizer, InPanRecognizer, IpRecognizer, ItFiscalCodeRecognizer, NhsRecognizer,
        PlPeselRecognizer, SePersonnummerRecognizer, UkNinoRecognizer, UsItinRecognizer,
        UsSsnRecognizer)

    domains = _offline_domains()

    class OfflineEmail(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(domains(pattern_text).suffix)

    class Ssn(UsSsnRecognizer):
        """Presidio also drops the published sample SSNs (which pass its other rules); typed into a
        prompt they still read as someone's number, so they count here."""

        def invalidate_result(self, pattern_text: str) -> bool:
            digits = "".join(c for c in pattern_text if c.isdigit())
            return digits not in _SAMPLE_SSNS and super().invalidate_result(pattern_text)

    address = PatternRecognizer(
        supported_entity="POSTAL_ADDRESS", name="PostalAddressRecognizer",
        patterns=[Pattern(f"address{i}", rx, score) for i, (rx, score) in enumerate(_ADDRESS_PATTERNS)])
    return (OfflineEmail(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(), Ssn(),
            UsItinRecognizer(), UkNinoRecognizer(), NhsRecognizer(), InAadhaarRecognizer(), InPanRecognizer(),
            EsNifRecognizer(), EsNieRecognizer(), ItFiscalCodeRecognizer(), PlPeselRecognizer(),
            SePersonnummerRecognizer(), FiPersonalIdentityCodeRecognizer(), CaSinRecognizer(),
            DeTaxIdRecognizer(), AuTfnRecognizer(), address)


def _phone(text: str) -> bool:
    import phonenumbers

    valid = phonenumbers.Leniency.VALID
    if any(True for _ in phonenumbers.PhoneNumberMatcher(text, "ZZ", leniency=valid)):  # "+<cc> ..." anywhere
        return True
    return any(any(True for _ in phonenumbers.PhoneNumberMatcher(text, region, leniency=valid))
               for region in PHONE_REGIONS)


def deobfuscate(text: str) -> str:
    """``text`` with written-out e-mail punctuation ("[at]", "(dot)", " at x dot y") made literal."""
    return _OB_DOT.sub(".", _OB_AT.sub("@", text))


def find_pii(text: str) -> list[str]:
    """Kinds of personal data found in ``text`` (sorted, unique): email, phone, payment_card,
    iban, ssn, national_id, ip_address, postal_address."""
    if not text or not any(ch.isdigit() or ch == "@" for ch in text) and not _OB_AT.search(text):
        return []
    found = set()
    plain = deobfuscate(text)
    for rec in _recognizers():
        entity = rec.supported_entities[0]
        entities = [entity]
        for res in rec.analyze(plain if entity == "EMAIL_ADDRESS" else text, entities):
            if res.score >= MIN_SCORE:
                found.add(_KINDS.get(res.entity_type, "national_id"))
                break
    if "phone" not in found and sum(ch.isdigit() for ch in text) >= 6 and _phone(text):  # no phone has fewer
        found.add("phone")
    return sorted(found)
