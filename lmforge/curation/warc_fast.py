"""WARC records read with FastWARC, as datatrove's ``process_record`` would turn them into documents.

Why: FastWARC (the reader of resiliparse's authors, C++) reads the sample crawl 3.6x faster
than warcio (bench/bench_extract.py), which matters once extraction is Resiliparse: warcio's
reading then costs as much CPU as extracting. FastWARC does not fail on a truncated gzip shard:
it ends quietly and hands out the last record cut short. Here a record whose payload is
shorter than its declared length raises ``EOFError`` (as warcio does on a truncated gzip
stream), so the reader keeps the documents before it and reports the file as
corrupt; a non-empty file without a single WARC record raises too.
"""
from __future__ import annotations

from typing import Callable, Iterator

HTML_TYPES = ("text/html", "application/xhtml+xml")


def _decode(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        import cchardet

        enc = cchardet.detect(body)["encoding"]
        if not enc or enc.upper() == "UTF-8":
            return None
        try:
            return body.decode(enc)
        except (UnicodeDecodeError, LookupError):
            return None


def _document(rec, ri: int) -> dict | None:
    """``process_record``'s dict (text, id, url, date) for one record, or None (not HTML, undecodable)."""
    from fastwarc.warc import WarcRecordType

    kind = "conversion" if rec.record_type == WarcRecordType.conversion else "response"
    mime = rec.headers.get("WARC-Identified-Payload-Type")
    if mime is not None and mime not in HTML_TYPES and (kind != "conversion" or mime != "text/plain"):
        return None
    expected = rec.content_length
    body = rec.reader.read()
    if len(body) < expected:
        raise EOFError(f"truncated: record {ri} ends after {len(body)} of its {expected} bytes")
    if mime is None:
        import magic

        mime = magic.from_buffer(body, mime=True)
        if mime not in HTML_TYPES and (kind != "conversion" or mime != "text/plain"):
            return None
    html = _decode(body)
    if html is None:
        return None
    return {"text": html, "id": rec.headers.get("WARC-Record-ID"), "url": rec.headers.get("WARC-Target-URI"),
            "date": rec.headers.get("WARC-Date")}


def records(f) -> Iterator[tuple[int, str | None, str | None, int, Callable[[], dict | None]]]:
    """``(index, record id, url, payload length, parse)`` for each response/conversion record of
    the raw (possibly gzip) stream ``f``; ``parse()`` reads the payload into a document dict."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    seen = False
    for ri, rec in enumerate(ArchiveIterator(f, parse_http=True)):
        seen = True
        if rec.record_type in (WarcRecordType.response, WarcRecordType.conversion):
            yield (ri, rec.headers.get("WARC-Record-ID"), rec.headers.get("WARC-Target-URI"), rec.content_length,
                   lambda rec=rec, ri=ri: _document(rec, ri))
    if not seen and f.tell() > 0:
        raise ValueError("no WARC record in the file")
