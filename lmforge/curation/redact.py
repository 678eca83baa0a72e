"""PII redaction as a datatrove formatter that also counts what it replaced.

datatrove's PIIFormatter replaces emails and IP addresses silently; curation's metrics report
how many of each were redacted, so a change in the crawl or the rules shows in ``dvc metrics diff``.
"""
from __future__ import annotations

from datatrove.pipeline.formatters import PIIFormatter

from lmforge.curation import dependency_check  # noqa: F401  (datatrove's step checks, without a scan)

class CountingPII(PIIFormatter):
    """PII redaction (emails, IP addresses) that also counts replacements."""

    name = "pii"

    def _count(self, replacer, text: str) -> int:
        return sum(1 for m in replacer.regex.finditer(text)
                   if replacer.validator is None or replacer.validator(m.group(0)))

    def format(self, text: str) -> str:
        if self.remove_emails:
            n = self._count(self.emails_replacer, text)
            if n:
                self.stat_update("emails_redacted", value=n)
                text = self.emails_replacer.replace(text)
        if self.remove_ips:
            n = self._count(self.ip_replacer, text)
            if n:
                self.stat_update("ips_redacted", value=n)
                text = self.ip_replacer.replace(text)
        return text
