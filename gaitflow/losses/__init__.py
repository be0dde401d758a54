"""Losses on part embeddings, their weightings, memory and part fusion (docs/losses.md:
every equation as implemented, its readings, our choices and the tests that pin it)."""
