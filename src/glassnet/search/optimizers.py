"""The engine's optimizers: one update rule for a stack of members, each with its own settings.

Each class holds its state stacked like the weights, (member, fan_out, fan_in) per layer, and
is handed a layer's backward factors (``dz``, the gradient at the layer's output, and ``a``, its
input) rather than a finished gradient, so SGD can accumulate the gradient straight into its
momentum buffer with one GEMM (no temporary). The numbers are ``torch.optim``'s:

- ``sgd``: ``torch.optim.SGD`` with momentum (dampening 0), weight decay added to the gradient;
- ``adam``: ``torch.optim.Adam``, weight decay added to the gradient (an L2 penalty);
- ``adamw``: ``torch.optim.AdamW``, weight decay decoupled (the weights shrink by lr * wd).

A member whose ``active`` entry is 0 (no rows in this mini-batch) keeps its weights and state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["OPTIMIZERS", "SGD", "Adam", "make_optimizer"]

Tensor = torch.Tensor


def _grad(dz: Tensor, a: Tensor, out: Tensor | None = None) -> Tensor:
    """The weight gradient dz^T a per member: (member, fan_out, fan_in), into ``out`` if given
    (the one-input case always allocates: it is small)."""
    if a.shape[2] == 1:  # one input: a weighted sum over rows, ~20x faster than a thin GEMM
        return (dz * a).sum(dim=1)[:, :, None]
    return torch.bmm(dz.transpose(1, 2), a, out=out)


class SGD:
    """Momentum SGD over stacked members; state: one momentum buffer per tensor."""

    def __init__(self, W: Sequence[Tensor], b: Sequence[Tensor], mom: Tensor) -> None:
        self.mom = mom  # (member, 1, 1)
        self.bufW = [torch.zeros_like(w) for w in W]
        self.bufb = [torch.zeros_like(x) for x in b]

    def keep(self, idx: Tensor) -> None:
        """Keep the state of the members at ``idx`` only."""
        for lst in (self.bufW, self.bufb):
            lst[:] = [t.index_select(0, idx) for t in lst]
        self.mom = self.mom.index_select(0, idx)

    def begin(self, sl: slice, active: Tensor | None) -> None:
        """Once per step and chunk, before the layers: the momentum this step uses."""
        mom = self.mom[sl]
        # an inactive member keeps its buffer (factor 1, nothing added: lr and wd are 0 there)
        self._mom = mom if active is None else torch.where(active > 0, mom, 1.0)

    def update(self, i: int, sl: slice, W: Tensor, b: Tensor, dz: Tensor, a: Tensor,
               lr: Tensor, wd: Tensor) -> None:  # fmt: skip
        """buf = mom*buf + dz^T a + wd*W; W -= lr*buf (and the same for the bias)."""
        bufW, bufb = self.bufW[i][sl], self.bufb[i][sl]
        bufW.mul_(self._mom)
        if a.shape[2] == 1:
            bufW.add_(_grad(dz, a))
        else:
            bufW.baddbmm_(dz.transpose(1, 2), a)  # the gradient straight into the buffer
        bufW.addcmul_(W, wd)
        W.addcmul_(bufW, lr, value=-1.0)
        bufb.mul_(self._mom).add_(dz.sum(dim=1, keepdim=True)).addcmul_(b, wd)
        b.addcmul_(bufb, lr, value=-1.0)


class Adam:
    """Adam (``decoupled=False``) or AdamW (``decoupled=True``) over stacked members."""

    def __init__(self, W: Sequence[Tensor], b: Sequence[Tensor], n_members: int,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 decoupled: bool = False, anchored: bool = False) -> None:  # fmt: skip
        self.beta1, self.beta2 = betas
        # anchored: the decay pulls each member towards its own initial weights, not towards 0
        # (randomised MAP, Pearce et al. 2020): members drawn from the prior stay apart where the
        # data do not pin them down, so their spread is an uncertainty band
        self.anchors = [t.clone() for t in (*W, *b)] if anchored else None
        self.eps, self.decoupled = eps, decoupled
        self.m = [torch.zeros_like(t) for t in (*W, *b)]  # first moments, weights then biases
        self.v = [torch.zeros_like(t) for t in (*W, *b)]  # second moments
        # scratch per tensor: the step's gradient, then (once the moments have it) the
        # denominator. Fresh MB-sized tensors every step cost a library fit ~40% more time in
        # page faults where glibc returns freed memory (measured: a 4-member deep ensemble)
        self.work = [torch.empty_like(t) for t in (*W, *b)]
        self.n_layers = len(W)
        # steps taken per member (a member without rows in a batch does not step)
        self.t = torch.zeros(n_members, 1, 1, device=W[0].device)

    def keep(self, idx: Tensor) -> None:
        """Keep the state of the members at ``idx`` only."""
        for lst in (self.m, self.v) + (() if self.anchors is None else (self.anchors,)):
            lst[:] = [t.index_select(0, idx) for t in lst]
        self.t = self.t.index_select(0, idx)
        self.work = [t[: len(idx)] for t in self.work]  # scratch: its rows carry nothing

    def begin(self, sl: slice, active: Tensor | None) -> None:
        """Once per step and chunk: count the step, and the bias corrections it needs."""
        t = self.t[sl]
        t.add_(1.0 if active is None else active)
        self._active = active
        # inactive members: decay factors of 1 and nothing added keep m and v as they were
        self._b1 = self.beta1 if active is None else torch.where(active > 0, self.beta1, 1.0)
        self._b2 = self.beta2 if active is None else torch.where(active > 0, self.beta2, 1.0)
        t = t.clamp_min(1.0)  # a member still at step 0 has lr 0 here; keep the algebra finite
        self._bc1 = 1.0 - torch.pow(self.beta1, t)  # (member, 1, 1)
        self._sqrt_bc2 = torch.sqrt(1.0 - torch.pow(self.beta2, t))

    def update(self, i: int, sl: slice, W: Tensor, b: Tensor, dz: Tensor, a: Tensor,
               lr: Tensor, wd: Tensor) -> None:  # fmt: skip
        """torch.optim.Adam/AdamW's step for layer i's weight and bias."""
        grad = _grad(dz, a, self.work[i][sl])
        for j, p, g in ((i, W, grad), (self.n_layers + i, b, dz.sum(dim=1, keepdim=True))):
            d = p if self.anchors is None else p - self.anchors[j][sl]  # what the decay shrinks
            if self.decoupled:
                p.addcmul_(d, lr * wd, value=-1.0)  # lr, wd are 0 for inactive members
            else:
                g = g.addcmul_(d, wd)  # L2: the decay joins the gradient
            m, v = self.m[j][sl], self.v[j][sl]
            if self._active is None:  # the common case: few passes over memory
                m.lerp_(g, 1.0 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
            else:
                g.mul_(self._active)
                m.mul_(self._b1).add_(g * (1.0 - self._b1))
                v.mul_(self._b2).add_(g * g * (1.0 - self._b2))
            # p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
            denom = torch.sqrt(v, out=self.work[j][sl]).div_(self._sqrt_bc2).add_(self.eps)
            if self._active is None:  # the step size folded into the denominator: one pass less
                p.addcdiv_(m, denom.div_(lr / self._bc1), value=-1.0)
            else:  # lr is 0 for inactive members: multiply, never divide by it
                p.sub_(m.div(denom).mul_(lr / self._bc1))


OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(name: str, W: Sequence[Tensor], b: Sequence[Tensor], mom: Tensor,
                   betas: tuple[float, float] = (0.9, 0.999), anchored: bool = False
                   ) -> SGD | Adam:  # fmt: skip
    """The engine's optimizer called ``name`` (one of OPTIMIZERS) for these stacked tensors;
    ``anchored``: Adam's decay pulls towards each member's initial weights."""
    if name == "sgd":
        if anchored:
            raise ValueError("anchored decay is implemented for adam and adamw only")
        return SGD(W, b, mom)
    if name in ("adam", "adamw"):
        return Adam(W, b, mom.shape[0], betas=betas, decoupled=name == "adamw",
                    anchored=anchored)  # fmt: skip
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
