"""The report card: one page summarising a whole pipeline run (``lmforge.report.card``)."""
