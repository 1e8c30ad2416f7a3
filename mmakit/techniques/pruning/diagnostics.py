"""Why accumulated movement scores cannot rank the weights of a converged model.

At a minimum of the training loss the expected gradient is about zero, so S = -sum_t g_t * w
over mini-batches is a sum of noise: its size follows the weight's importance (the diagonal
Fisher saliency w^2 E[g^2]: big weights with big gradients make big noise) while its sign is a
coin flip. Pruning the lowest S then removes the negative tail of the most important weights.
The measurements here show it on any model: the sign of S against importance, the signal-to-
noise ratio of each sum, and the share of the most important weights a per-tensor cut removes
under movement and its controls (magnitude, random, the sign flipped, |S| with shuffled signs).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks


@dataclass
class Moments:
    """Per-weight sums over `n` gradient mini-batches of the movement m = -g * w, of m^2 and of g^2."""

    move: dict[str, torch.Tensor]
    move_sq: dict[str, torch.Tensor]
    grad_sq: dict[str, torch.Tensor]
    n: int

    def snr(self) -> dict[str, torch.Tensor]:
        """|S| over the standard deviation of a sum of n such terms: the t-statistic of the
        mean movement (about 0.67 in the median when the sum is pure noise)."""
        out = {}
        for name, s in self.move.items():
            var = (self.move_sq[name] / self.n - (s / self.n) ** 2).clamp_min(0)
            out[name] = s.abs() / (self.n * var).sqrt().clamp_min(torch.finfo(s.dtype).tiny)
        return out

    def importance(self, weights: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        """w^2 E[g^2]: the diagonal-Fisher saliency of each weight."""
        return {name: w.detach() ** 2 * self.grad_sq[name] / self.n for name, w in weights.items()}


def moments(model: nn.Module, masks: Masks, source: GradientSource, round_index: int = 0) -> Moments:
    """`Moments` of `masks.weights` over `source`'s mini-batches of pruning step `round_index`
    (another index draws other batches: importance from batches the scores never saw)."""
    weights = {name: w.detach() for name, w in masks.weights.items()}
    sums = {k: {n: torch.zeros_like(w) for n, w in weights.items()} for k in ("move", "move_sq", "grad_sq")}
    count = 0

    def consume(grads: list[torch.Tensor]) -> None:
        nonlocal count
        for (name, w), g in zip(weights.items(), grads):
            m = -g * w
            sums["move"][name] += m
            sums["move_sq"][name] += m * m
            sums["grad_sq"][name] += g * g
        count += 1

    source.each(model, masks, round_index, consume)
    return Moments(sums["move"], sums["move_sq"], sums["grad_sq"], count)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two equally long tensors, tied values at their mean rank."""
    ra, rb = _ranks(a.reshape(-1)), _ranks(b.reshape(-1))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-300))


def _ranks(x: torch.Tensor) -> torch.Tensor:
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    return (ends - (counts.double() - 1) / 2)[inverse]


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors.values()])


def score_signs(scores: dict[str, torch.Tensor], importance: dict[str, torch.Tensor],
                snr: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """How much of S is signal: the share of negative scores, the rank correlation of |S| and of
    sign(S) with importance (sign: ~0 when it is a coin flip) and the median signal-to-noise ratio."""
    s, imp = flat(scores), flat(importance)
    out = {"negative_share": float((s < 0).double().mean()),
           "rank_corr_abs_importance": rank_correlation(s.abs(), imp),
           "rank_corr_sign_importance": rank_correlation(torch.sign(s), imp)}
    if snr is not None:
        out["median_snr"] = float(flat(snr).median())
    return out


def control_scores(scores: dict[str, torch.Tensor], weights: dict[str, nn.Parameter],
                   seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Movement's scores S and its controls (higher = keep): magnitude (w^2), random, the sign
    flipped (-S: if only S's sign were wrong, this would be the right ranking) and |S| with its
    signs shuffled within each tensor (S's sizes, the signs of chance)."""
    rng = torch.Generator().manual_seed(seed)
    shuffled = {}
    for name, s in scores.items():
        signs = torch.sign(s).reshape(-1)
        shuffled[name] = s.abs() * signs[torch.randperm(signs.numel(), generator=rng)].view_as(s)
    return {
        "movement": scores,
        "movement, sign flipped": {n: -s for n, s in scores.items()},
        "|movement|, signs shuffled": shuffled,
        "magnitude": {n: w.detach() ** 2 for n, w in weights.items()},
        "random": {n: torch.rand(w.shape, generator=rng) for n, w in weights.items()},
    }


def cut(weights: dict[str, nn.Parameter], scores: dict[str, torch.Tensor], sparsity: float) -> Masks:
    """The masks of one per-tensor cut of the lowest `scores` to `sparsity` (the weights untouched)."""
    masks = Masks(weights, selection="per_tensor")
    masks.select({n: s.reshape(-1) for n, s in scores.items()}, sparsity)
    return masks


def top_removed(masks: Masks, importance: dict[str, torch.Tensor], top: float = 0.01) -> float:
    """The share of the `top` fraction most important weights (over all tensors) that `masks` prune."""
    imp = flat(importance)
    count = max(1, round(top * imp.numel()))
    most = torch.zeros(imp.numel(), dtype=torch.bool)
    most[torch.topk(imp, count).indices] = True
    pruned = ~torch.cat([k.reshape(-1) for k in masks.keep.values()]).cpu()
    return float((pruned & most).sum() / count)


def lines_over(masks: Masks, sparsity: float, factor: float = 2.0) -> float:
    """The share of rows and columns of the pruned matrices (a unit's inputs or outputs) that
    lose more than `factor` x `sparsity` of their weights: about 0 when a cut is spread like a
    random one, large when it falls on whole units (hidden dimensions, neurons)."""
    over = lines = 0
    for keep in masks.keep.values():
        cut = (~keep).float()
        for share in (cut.mean(dim=1), cut.mean(dim=0)):
            over += int((share > factor * sparsity).sum())
            lines += share.numel()
    return over / lines
