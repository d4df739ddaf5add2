"""Code that the documentation shows and ``tests/test_docs.py`` runs: one source for both.

The pages include these files (or single functions of them) with ``literalinclude``, so a
recipe that stops working fails the test suite instead of misleading a reader.
"""
