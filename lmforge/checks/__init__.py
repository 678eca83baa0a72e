"""Great Expectations checks at every data boundary.

``suites`` says what good data is at each boundary (curated documents, token shards;
the SFT and feedback stages build theirs from the same helpers); ``runner`` runs a
suite in an ephemeral GX context, writes the validation result and byte-stable Data
Docs, and fails the stage with a message naming the broken expectation. Every stage
that validates imports them from here.
"""
