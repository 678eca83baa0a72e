"""PII redaction: e-mail addresses and public IP addresses in real text are replaced and counted."""
from __future__ import annotations

from lmforge.testing.curate import jsonl_docs


def test_emails_and_public_ips_redacted():
    from lmforge.curation.redact import CountingPII

    base = next(d["text"][:2000] for d in jsonl_docs() if "@" not in d["text"][:2000])
    text = (base + "\nReport bugs to Jane Doe <jane.doe@lists.debian.org> or admin@python.org.\n"
            "Our mirror is at 151.101.0.223; the LAN gateway is 192.168.1.1 and loopback 127.0.0.1.\n")
    pii = CountingPII()
    out = pii.format(text)
    assert "jane.doe@lists.debian.org" not in out and "admin@python.org" not in out
    assert "151.101.0.223" not in out
    assert "192.168.1.1" in out and "127.0.0.1" in out  # private/loopback: not PII, kept
    assert out.startswith(base[:500])                    # the rest of the text is untouched
    stats = pii.stats.stats
    assert stats["emails_redacted"].total == 2 and stats["ips_redacted"].total == 1


def test_all_ips_when_configured():
    from lmforge.curation.redact import CountingPII

    out = CountingPII(only_remove_public_ips=False).format("gateway 192.168.1.1, dns 8.8.8.8")
    assert "192.168.1.1" not in out and "8.8.8.8" not in out
