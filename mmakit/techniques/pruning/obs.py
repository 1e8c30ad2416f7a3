"""Second-order pruning with the Optimal BERT Surgeon (oBERT, Kurtic et al. 2022).

With F^-1 the block-diagonal inverse of the dampened empirical Fisher (fisher.py), a group Q
of weights (one weight, or 4 consecutive ones) has saliency
    rho_Q = 1/2 w_Q^T ([F^-1]_QQ)^-1 w_Q        (one weight: w_j^2 / (2 [F^-1]_jj)),
the globally lowest groups are pruned, and the weights left in each block move by the
optimal update summed over the newly pruned groups P of the block,
    dw = - F^-1 sum_{Q in P} E_Q^T ([F^-1]_QQ)^-1 w_Q,
after which pruned weights are set to exactly 0. F^-1 is rebuilt from m fresh gradients at
every pruning step, with the model in eval mode and each gradient multiplied by the mask.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.fisher import BlockFisherInverse
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.memory import peak_memory


def fisher_inverse(model: nn.Module, masks: Masks, source: GradientSource, round_index: int,
                   block_size: int, damp: float, chunk_blocks: int, build: str = "sherman-morrison") -> BlockFisherInverse:
    """F^-1 over the pruned weights from `source.count` masked gradients."""
    fisher = BlockFisherInverse([w.numel() for w in masks.weights.values()], block_size, damp, source.count, chunk_blocks,
                                build=build)
    source.each(model, masks, round_index, fisher.add)
    fisher.check_complete()
    return fisher


@torch.no_grad()
def obs_prune(fisher: BlockFisherInverse, masks: Masks, sparsity: float) -> int:
    """Prune `masks.weights` to `sparsity` by OBS saliency with the optimal update; return the new groups."""
    fisher.check_complete()
    g = masks.group_size
    names, weights = list(masks.weights), list(masks.weights.values())
    w = fisher.to_blocks([x.detach() for x in weights])
    if g == 1:
        scaled = w / fisher.inv.diagonal(dim1=1, dim2=2)  # w_j / [F^-1]_jj
        saliency = 0.5 * w * scaled
    else:
        wq = w.view(fisher.n_blocks, -1, g, 1)
        scaled = torch.linalg.solve(fisher.diagonal_blocks(g), wq)  # ([F^-1]_QQ)^-1 w_Q
        saliency = 0.5 * (wq * scaled).sum((-2, -1))
        scaled = scaled.view_as(w)
    before = {n: k.clone() for n, k in masks.keep.items()}
    new = masks.select(dict(zip(names, fisher.from_blocks(saliency, unit=g))), sparsity)
    newly = fisher.to_blocks([before[n] & ~masks.keep[n] for n in names])
    update = fisher.matvec(scaled * newly)
    for param, value in zip(weights, fisher.from_blocks(w - update)):
        param.copy_(value.view_as(param))
    masks.apply()
    return new


def fisher_stats(fisher: BlockFisherInverse, masks: Masks) -> dict:
    """What a step's Fisher was: m, B, damp, how it was built, its memory, the seconds spent on
    the inverse, and its degeneracy over the weights `masks` keeps (taken before the step prunes)."""
    return {"num_grads": fisher.num_grads, "block_size": fisher.block_size, "damp": fisher.damp,
            "fisher_build": fisher.build, "fisher_mb": fisher.nbytes / 2**20, "inverse_seconds": fisher.seconds,
            "degeneracy": fisher.degeneracy(list(masks.keep.values()))}


class ObsPruner(Pruner):
    """oBERT pruning; each step reports seconds (gradients, inverse, pruning), peak memory and
    the Fisher's degeneracy (fisher.py)."""

    method = "obs"

    def __init__(self, source: GradientSource, block_size: int, damp: float, chunk_blocks: int = 2048,
                 build: str = "sherman-morrison"):
        self.source, self.block_size, self.damp, self.chunk_blocks = source, block_size, damp, chunk_blocks
        self.build = build

    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        start = time.perf_counter()
        with peak_memory() as memory:
            fisher = fisher_inverse(model, masks, self.source, round_index, self.block_size, self.damp,
                                    self.chunk_blocks, self.build)
            stats = fisher_stats(fisher, masks)
            built = time.perf_counter()
            new = obs_prune(fisher, masks, sparsity)
            del fisher
        done = time.perf_counter()
        return {"newly_pruned_groups": new, "seconds": done - start, "fisher_seconds": built - start,
                "prune_seconds": done - built, "grad_batch": self.source.batch_size, **stats, **memory}
