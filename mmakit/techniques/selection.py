"""Choosing what to prune from scores, shared by unstructured pruning and head pruning."""
from __future__ import annotations

import torch


def lowest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean selection of exactly `count` lowest entries of a 1-d tensor; ties go to the earlier index."""
    chosen = torch.zeros(scores.shape, dtype=torch.bool)
    if count <= 0:
        return chosen
    threshold = torch.kthvalue(scores, count).values
    chosen = scores < threshold
    ties = torch.nonzero(scores == threshold).squeeze(1)
    chosen[ties[: count - int(chosen.sum())]] = True
    return chosen
