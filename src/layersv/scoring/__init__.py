"""Scoring: embeddings + trials → scores (cosine, mean subtraction; AS-norm and calibration build on these)."""

from .cosine import cosine_scores

__all__ = ["cosine_scores"]
