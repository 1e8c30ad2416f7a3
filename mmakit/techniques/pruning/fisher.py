"""Block-diagonal inverse of the dampened empirical Fisher, F = damp I + (1/m) sum_i g_i g_i^T,
built from m gradients in one of two ways that agree to rounding at moderate damps (tested):

- "sherman-morrison" (oBERT's): rank-1 updates of the inverse, no matrix inversion;
- "direct": the B x B Fisher of every block summed from the gradients (one batched rank-k
  product per buffer of gradients, summed in float64), then all blocks inverted at once, chunk
  by chunk, by a Cholesky factorisation in float64. It needs about half the arithmetic of Sherman-Morrison
  at m >> buffer; a block that rounding leaves indefinite (rank far below B at a tiny damp)
  is inverted through its eigendecomposition instead.

Blocks are B consecutive weights of one flattened tensor (the last block of a tensor is
zero-padded; blocks never span tensors), stored as one (blocks, B, B) tensor: O(B d) memory.
Gradients are buffered in groups of `buffer`. Sherman-Morrison: each chunk of `chunk_blocks`
blocks then takes the group's steps in one pass, keeping the rank-1 factors:
    u_i = F_0^-1 g_i - sum_{j<i} u_j (u_j . g_i) / d_j,   d_i = m + g_i . u_i,
    F_k^-1 = F_0^-1 - sum_i u_i u_i^T / d_i,
which is the per-gradient recursion F_i^-1 = F_{i-1}^-1 - (F_{i-1}^-1 g)(F_{i-1}^-1 g)^T / (m + g^T F_{i-1}^-1 g)
written so the (B, B) blocks are read and written once per group instead of once per gradient.

`degeneracy` is the median over the unpruned weights of damp * [F^-1]_jj: near 1 the gradients
add nothing to the damp (F^-1 ~ I / damp), so OBS saliency w^2 / (2 [F^-1]_jj) ranks like magnitude.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

BUILDS = ("sherman-morrison", "direct")


class BlockFisherInverse:
    """The inverse of the dampened block-diagonal empirical Fisher over a list of tensors."""

    def __init__(self, sizes: Sequence[int], block_size: int, damp: float, num_grads: int,
                 chunk_blocks: int = 2048, buffer: int = 8, dtype: torch.dtype = torch.float32,
                 build: str = "sherman-morrison"):
        if block_size < 1 or damp <= 0 or num_grads < 1 or chunk_blocks < 1 or buffer < 1:
            raise ValueError("block_size, damp, num_grads, chunk_blocks and buffer must be positive")
        if build not in BUILDS:
            raise ValueError(f"unknown Fisher build {build!r}; choose from {', '.join(BUILDS)}")
        self.build, self.damp = build, damp
        self.sizes = list(sizes)
        self.block_size = block_size
        self.num_grads = num_grads
        self.chunk_blocks = chunk_blocks
        counts = [math.ceil(n / block_size) for n in self.sizes]
        self.block_offsets = [sum(counts[:i]) for i in range(len(counts))]
        self.n_blocks = sum(counts)
        self.dtype = dtype
        # Sherman-Morrison: the inverse, from I / damp. Direct: the sum of g g^T in float64 (a float32
        # sum loses what a tiny damp then magnifies), inverted into `inv` once complete.
        if build == "sherman-morrison":
            self.inv = torch.eye(block_size, dtype=dtype).div_(damp).expand(self.n_blocks, -1, -1).clone()
            self._sum = None
        else:
            self.inv = torch.empty(0, block_size, block_size, dtype=dtype)
            self._sum = torch.zeros(self.n_blocks, block_size, block_size, dtype=torch.float64)
        self.seen = 0
        self.seconds = 0.0  # spent building the inverse (not computing gradients)
        self._pending = 0  # gradients written to self._grads but not yet applied
        self._grads = torch.empty(min(buffer, num_grads), self.n_blocks, block_size, dtype=dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of the inverse blocks, the gradient buffer and (direct build, until inverted) the float64 sum."""
        held = (self.inv.numel() + self._grads.numel()) * self.inv.element_size()
        return held + (self._sum.numel() * self._sum.element_size() if self._sum is not None else 0)

    def to_blocks(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flattened tensors laid out as zero-padded (blocks, B) rows."""
        out = torch.zeros(self.n_blocks * self.block_size, dtype=self.dtype)
        for t, n, off in zip(tensors, self.sizes, self.block_offsets):
            out[off * self.block_size : off * self.block_size + n] = t.reshape(-1)
        return out.view(self.n_blocks, self.block_size)

    def from_blocks(self, blocks: torch.Tensor, unit: int = 1) -> list[torch.Tensor]:
        """Per-tensor flat values back from a (blocks, B / unit) layout, padding dropped."""
        flat = blocks.reshape(-1)
        per_block = self.block_size // unit
        return [flat[off * per_block : off * per_block + n // unit] for n, off in zip(self.sizes, self.block_offsets)]

    def add(self, grads: Sequence[torch.Tensor]) -> None:
        """Take one gradient (one tensor per pruned weight, already masked)."""
        if self.seen >= self.num_grads:
            raise ValueError(f"the Fisher was declared with m = {self.num_grads} gradients")
        self._grads[self._pending] = self.to_blocks(grads)
        self._pending += 1
        self.seen += 1
        if self._pending == self._grads.shape[0] or self.seen == self.num_grads:
            start = time.perf_counter()
            if self.build == "sherman-morrison":
                self._flush()
            else:
                self._accumulate()
                if self.seen == self.num_grads:
                    self._invert()
            self.seconds += time.perf_counter() - start

    def _accumulate(self) -> None:
        """Direct build: add the buffered gradients' outer products to every block's sum."""
        k, self._pending = self._pending, 0
        for start in range(0, self.n_blocks, self.chunk_blocks):
            g = self._grads[:k, start : start + self.chunk_blocks].transpose(0, 1).double()  # (c, k, B)
            self._sum[start : start + self.chunk_blocks].baddbmm_(g.transpose(1, 2), g)

    def _invert(self) -> None:
        """Direct build: replace each block's sum S by (damp I + S / m)^-1, in float64. Where
        rounding leaves a block not positive definite (S far below rank B at a tiny damp), its
        inverse comes from the eigendecomposition with eigenvalues held at the damp, their
        true lower bound."""
        eye = torch.eye(self.block_size, dtype=torch.float64)
        self.inv = torch.empty(self.n_blocks, self.block_size, self.block_size, dtype=self.dtype)
        for start in range(0, self.n_blocks, self.chunk_blocks):
            block = self.inv[start : start + self.chunk_blocks]
            fisher = self._sum[start : start + self.chunk_blocks].div_(self.num_grads).add_(eye, alpha=self.damp)
            factor, info = torch.linalg.cholesky_ex(fisher)
            inverse = torch.cholesky_inverse(factor)
            bad = info != 0
            if bad.any():
                values, vectors = torch.linalg.eigh(fisher[bad])
                inverse[bad] = (vectors / values.clamp_min(self.damp).unsqueeze(1)) @ vectors.transpose(1, 2)
            block.copy_(inverse)
        self._sum = None

    def _flush(self) -> None:
        """Sherman-Morrison: apply the buffered gradients' rank-1 updates to every block."""
        k, self._pending = self._pending, 0
        for start in range(0, self.n_blocks, self.chunk_blocks):
            inv = self.inv[start : start + self.chunk_blocks]
            g = self._grads[:k, start : start + self.chunk_blocks].transpose(0, 1).contiguous()  # (c, k, B)
            u = torch.bmm(inv, g.transpose(1, 2))  # (c, B, k): F_0^-1 g_i
            scaled = torch.empty_like(u)  # u_i / d_i
            for i in range(k):
                if i:
                    dots = torch.bmm(g[:, i : i + 1], u[:, :, :i])  # (c, 1, i): g_i . u_j
                    u[:, :, i] -= torch.bmm(scaled[:, :, :i], dots.transpose(1, 2)).squeeze(2)
                denom = self.num_grads + (g[:, i] * u[:, :, i]).sum(1)
                scaled[:, :, i] = u[:, :, i] / denom.unsqueeze(1)
            inv.baddbmm_(u, scaled.transpose(1, 2), alpha=-1)

    def check_complete(self) -> None:
        if self.seen != self.num_grads:
            raise ValueError(f"the Fisher has {self.seen} of its m = {self.num_grads} gradients")

    def degeneracy(self, keep: Sequence[torch.Tensor] | None = None) -> float:
        """Median of damp * [F^-1]_jj over the real (unpadded) weights, or only those `keep`
        marks (the weights still unpruned: a pruned weight's gradient is masked to zero, so
        its entry is exactly 1 and says nothing): 1 means magnitude-like."""
        diag = self.from_blocks(self.inv.diagonal(dim1=1, dim2=2))
        if keep is not None:
            diag = [d[k.reshape(-1)] for d, k in zip(diag, keep)]
        return float(torch.cat(diag).median()) * self.damp

    def diagonal_blocks(self, group: int = 1) -> torch.Tensor:
        """The (group, group) diagonal sub-blocks of every block: shape (blocks, B / group, group, group)."""
        if self.block_size % group:
            raise ValueError(f"block size {self.block_size} is not a multiple of the group size {group}")
        q = self.block_size // group
        view = self.inv.view(self.n_blocks, q, group, q, group)
        return view.diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """F^-1 v for v in the (blocks, B) layout, computed chunk by chunk."""
        out = torch.empty_like(v)
        for start in range(0, self.n_blocks, self.chunk_blocks):
            stop = start + self.chunk_blocks
            out[start:stop] = torch.bmm(self.inv[start:stop], v[start:stop].unsqueeze(2)).squeeze(2)
        return out
