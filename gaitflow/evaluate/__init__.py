"""Evaluation: distances between part embeddings and the datasets' protocols."""

from gaitflow.evaluate.distances import nearest_in_groups, pairwise_distance
from gaitflow.evaluate.protocols import cross_view_rank1

__all__ = ["pairwise_distance", "nearest_in_groups", "cross_view_rank1"]
