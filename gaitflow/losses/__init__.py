"""Losses on part embeddings, their weightings, memory and part fusion (see FORMULATION.md)."""
