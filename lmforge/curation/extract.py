"""HTML to text: the extraction step of HTML sources, Resiliparse or Trafilatura (``data.extract.engine``).

Why two: Trafilatura (datatrove's extractor, run in a sandbox process with a timeout) was 60 %
of curation's CPU time; Resiliparse's ``extract_plain_text`` (the extractor of DCLM and marin,
C++ with a lexbor parser) is 20x faster. Resiliparse is the default: with the page furniture
of ``curate_config.BOILERPLATE_SELECTORS`` skipped it keeps more real text than Trafilatura
(headings, code signatures, intros) and no navigation; Trafilatura keeps some tables that
Resiliparse's main-content heuristic drops. docs/LOG.md has both comparisons. Both steps have
the same contract: every document whose extraction is empty or fails goes to the exclusion
writer with reason ``extract:<why>``, kept texts pass through ``tidy`` (``ExtractStep.forward``). Resiliparse
needs no sandbox: it does not hang on pathological pages (its parser is linear) and raises
instead of crashing, so its output does not depend on the machine's load either.
"""
from __future__ import annotations

import contextlib
import re

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.extractors.base import BaseExtractor, ExtractorSandbox
from datatrove.utils.logging import logger

from lmforge.curation.curate_config import ExtractConfig
from lmforge.curation.work import WorkWriter

_BLANKS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Strip every line and collapse runs of blank lines.

    Trafilatura keeps the source's indentation, so DocBook pages come out with whitespace-only
    lines like "\\t\\t" between paragraphs; Gopher's duplicate-line rule counts those as
    duplicates and dropped a third of the handbook before this.
    """
    return _BLANKS.sub("\n\n", "\n".join(line.strip() for line in text.splitlines())).strip()


class ExtractStep:
    """Mixin: the contract both extractors share: a kept text is tidied and forwarded, an
    empty or failed extraction goes to the exclusion writer with its reason."""

    def forward(self, doc, text: str | None, why: str, writer, rank: int):
        """``doc`` with ``text`` (tidied) if any is left, else None after recording the drop."""
        text = tidy(text) if text else text
        if text:
            doc.text = text
            self.stat_update("forwarded")
            return doc
        self.stat_update("dropped", f"dropped_{why}")
        if writer is not None:
            doc.metadata["filter_reason"] = why
            writer.write(doc, rank)
        return None


class ResiliparseExtractor(ExtractStep, BaseExtractor):
    """Resiliparse main-content extraction as a datatrove step, with an exclusion writer."""

    name = "extract"

    def __init__(self, exclusion_writer: WorkWriter | None = None, main_content: bool = True,
                 skip_elements: list[str] | tuple[str, ...] = ()):
        super().__init__(timeout=0)
        self.exclusion_writer, self.main_content = exclusion_writer, main_content
        self.skip_elements = list(skip_elements) or None

    def extract(self, text: str) -> str:
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree

        tree = HTMLTree.parse(text)
        return extract_plain_text(tree, preserve_formatting=True, main_content=self.main_content,
                                  list_bullets=True, alt_texts=False, links=False, form_fields=False,
                                  noscript=False, comments=False, skip_elements=self.skip_elements)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.exclusion_writer or contextlib.nullcontext() as writer:
            for doc in data:
                self.stat_update("total")
                with self.track_time():
                    try:
                        text, why = self.extract(doc.text), "empty"
                    except Exception as e:  # noqa: BLE001 - a bad page must not stop the shard
                        logger.warning(f"extract: {doc.metadata.get('url')}: {type(e).__name__}: {e}")
                        text, why = None, "error"
                if self.forward(doc, text, why, writer, rank) is not None:
                    yield doc


class RecordingTrafilatura(ExtractStep, Trafilatura):
    """Trafilatura extraction (datatrove's, in its sandbox process with a timeout) that hands
    every dropped document to ``exclusion_writer``; datatrove's own drops them unrecorded."""

    name = "extract"

    def __init__(self, exclusion_writer: WorkWriter | None = None, **kwargs):
        super().__init__(**kwargs)
        self.exclusion_writer = exclusion_writer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        writer_cm = self.exclusion_writer if self.exclusion_writer else contextlib.nullcontext()
        with ExtractorSandbox(timeout=self.timeout, warmup_text="") as extractor, writer_cm as writer:
            for doc in data:
                self.stat_update("total")
                with self.track_time():
                    try:
                        text, why = extractor.process_document(doc.text, self.extract), "empty"
                    except TimeoutError:
                        text, why = None, "timeout"
                    except EOFError:
                        text, why = None, "broken_process"
                    except Exception as e:  # noqa: BLE001 - a bad page must not stop the shard
                        logger.warning(f"extract: {doc.metadata.get('url')}: {type(e).__name__}: {e}")
                        text, why = None, "error"
                if self.forward(doc, text, why, writer, rank) is not None:
                    yield doc


def make_extractor(p: ExtractConfig, exclusion_writer: WorkWriter | None):
    """The extraction step ``data.extract.engine`` names."""
    if p.engine == "resiliparse":
        return ResiliparseExtractor(exclusion_writer=exclusion_writer, main_content=p.main_content,
                                   skip_elements=p.skip_elements)
    return RecordingTrafilatura(exclusion_writer=exclusion_writer, timeout=p.timeout,
                                favour_precision=p.favour_precision)
