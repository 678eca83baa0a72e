"""datatrove filter blocks made to run offline and per language, one block per module.

``url``: datatrove's URLFilter with the bundled public-suffix snapshot and hashed block lists;
``language``: py3langid instead of datatrove's downloaded fastText models; ``quality``: the
stock Gopher, C4 and FineWeb rules with per-language stop words and one cached word splitter.
Nothing is re-exported here: a worker imports only the blocks its pipeline names.
"""
