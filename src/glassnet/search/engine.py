"""The batched engine: every member of a search as one computation.

A randomized search with 5 folds trains ~100 small nets one after another; for the study's
1-512-256-1 net most of the time goes to per-fit and per-epoch overhead, not arithmetic. Here all
members live in stacked weight tensors (member, fan_out, fan_in) and one epoch of every member is
a handful of batched matmuls (``torch.bmm``). Gradients are written out by hand (the MLP is
small and fixed), which avoids autograd's graph bookkeeping and lets every update happen in
place. The update is ``torch.optim``'s SGD with momentum, Adam or AdamW (``search.optimizers``),
with a learning rate, momentum, weight decay, epoch count and dropout per member.

This module knows tensors only; the epochs (batches, validation reads, members leaving) are
``search.loop``'s, and reading a skorch net's settings is ``search.adapter``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from glassnet.activations import ACTIVATIONS
from glassnet.models import MLP
from glassnet.search.optimizers import make_optimizer

__all__ = ["Population", "load_member"]


def _linear(a: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (member, batch, in) @ W^T (member, in, out) + b, per member.

    A one-input layer (the regression net's first) is an outer product: done element-wise it is
    ~20x faster than a batched GEMM with an inner dimension of 1 (measured: 25 us vs 500 us).
    """
    if W.shape[2] == 1:
        return torch.addcmul(b, a, W.transpose(1, 2))
    return torch.bmm(a, W.transpose(1, 2)).add_(b)  # bias added after: no broadcast copy first


class Population:
    """Stacked state of the members still training: weights, optimizer state, settings.

    ``optimizer``: ``sgd`` (momentum from each member's settings), ``adam`` or ``adamw``
    (``betas`` shared; ``anchored``: the decay pulls towards each member's initial weights);
    each member has its own learning rate and weight decay.
    """

    def __init__(
        self,
        init: MLP | Sequence[MLP],
        settings: list[dict[str, float]],
        device: torch.device,
        activation: str,
        layer_lr: Sequence[float] | None = None,
        optimizer: str = "sgd",
        betas: tuple[float, float] = (0.9, 0.999),
        anchored: bool = False,
    ) -> None:
        m = len(settings)
        self.act = ACTIVATIONS[activation].forward_
        self.act_grad = ACTIVATIONS[activation].grad_
        self.activation = activation
        # Weights stored (member, fan_out, fan_in) as nn.Linear stores them; of the two layouts
        # it gives the faster batched GEMMs for the forward, weight-gradient and input-gradient
        # products here (measured ~8% on the 512x256 layer).
        if isinstance(init, MLP):  # every member starts from the same weights
            layers = init.linear_layers()
            self.W = [lin.weight.detach().to(device).expand(m, -1, -1).clone() for lin in layers]
            self.b = [
                lin.bias.detach().to(device)[None, None, :].expand(m, 1, -1).clone()
                for lin in layers
            ]
        else:  # one initial module per member
            if len(init) != m:
                raise ValueError(f"{len(init)} initial modules for {m} members")
            per_member = [mod.linear_layers() for mod in init]
            self.W = [
                torch.stack([ls[i].weight.detach() for ls in per_member]).to(device)
                for i in range(len(per_member[0]))
            ]  # (member, fan_out, fan_in) per layer
            self.b = [
                torch.stack([ls[i].bias.detach() for ls in per_member])[:, None, :].to(device)
                for i in range(len(per_member[0]))
            ]  # (member, 1, fan_out) per layer
        # SGD parameter groups: layer i steps with lr * layer_lr[i] (None: one lr for all).
        if layer_lr is not None and len(layer_lr) != len(self.W):
            raise ValueError(f"layer_lr has {len(layer_lr)} entries for {len(self.W)} layers")
        self.layer_lr = None if layer_lr is None else [float(f) for f in layer_lr]

        def col(key: str, default: float) -> torch.Tensor:
            values = [s.get(key, default) for s in settings]
            return torch.tensor(values, dtype=torch.float32, device=device)[:, None, None]

        self.lr, self.wd, self.p = col("lr", 0.01), col("wd", 0.0), col("dropout", 0.0)
        self.opt = make_optimizer(
            optimizer, self.W, self.b, col("momentum", 0.0), betas, anchored
        )
        self.ids = list(range(m))  # member ids, in stacking order

    def keep(self, rows: list[int]) -> None:
        """Keep only the members at positions ``rows`` (others have left the batch)."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.W[0].device)
        for lst in (self.W, self.b):
            lst[:] = [t.index_select(0, idx) for t in lst]
        self.lr, self.wd, self.p = (t.index_select(0, idx) for t in (self.lr, self.wd, self.p))
        self.opt.keep(idx)
        self.ids = [self.ids[r] for r in rows]

    def forward(
        self,
        X: torch.Tensor,
        train: bool,
        sl: slice = slice(None),
        gen: torch.Generator | None = None,
    ):
        """X (member, batch, in) -> output (member, batch, out), plus what backward needs.

        Works on the members in ``sl``. ``inputs[i]`` is what layer i saw (after dropout),
        ``hidden[i]`` hidden layer i's activation before dropout, ``masks[i]`` its scaled dropout
        mask (None without dropout).
        """
        inputs, hidden, masks = [X], [], []
        a = X
        p = self.p[sl]
        use_dropout = train and bool((p > 0).any())
        last = len(self.W) - 1
        for i in range(len(self.W)):
            z = _linear(a, self.W[i][sl], self.b[i][sl])  # (member, batch, fan_out)
            if i == last:
                return z, inputs, hidden, masks
            h = self.act(z)
            hidden.append(h)
            mask = None
            if use_dropout:
                keep = 1.0 - p  # (member, 1, 1)
                mask = (torch.rand(h.shape, generator=gen, device=h.device) < keep) / keep
                h = h * mask
            masks.append(mask)
            a = h
            inputs.append(a)
        raise AssertionError("unreachable")

    def step(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor,
        active: torch.Tensor | None,
        gen: torch.Generator | None,
        chunk: int,
    ) -> torch.Tensor:
        """One optimizer step of every member on its batch; return per-member batch losses.

        ``w`` (member, batch, 1) holds 1/batch_size for real rows and 0 for padding; ``active``
        (member, 1, 1) is 0 for members with no batch left this epoch (they must not move), or
        None when all are active. Members are processed in equal, even-sized chunks of about
        ``chunk`` (``ceil(m / ceil(m / chunk))``, rounded up to even), so that a chunk's
        activations, weights and momentum stay in cache from the forward pass to the update.
        """
        losses = []
        m = len(self.ids)
        # Equal chunks (25 members: 13 + 12, not 16 + 9), rounded up to an even size so that
        # both cores get the same share of every batched GEMM.
        n_chunks = -(-m // chunk)
        chunk = -(-m // n_chunks)
        chunk += chunk % 2
        for c0 in range(0, m, chunk):
            sl = slice(c0, c0 + chunk)
            losses.append(
                self._step(sl, X[sl], y[sl], w[sl], None if active is None else active[sl], gen)
            )
        return torch.cat(losses)

    def _step(self, sl, X, y, w, active, gen) -> torch.Tensor:
        out, inputs, hidden, masks = self.forward(X, True, sl, gen)
        err = out - y  # (member, batch, out)
        loss = (err * err * w).sum(dim=(1, 2))  # (member,)  MSE with the mean over the batch
        dz = 2.0 * err * w  # (member, batch, out): d loss / d output
        lr, wd = self.lr[sl], self.wd[sl]
        if active is not None:  # inactive members: no step, weights and state kept as they are
            lr, wd = lr * active, wd * active
        self.opt.begin(sl, active)
        for i in range(len(self.W) - 1, -1, -1):
            W = self.W[i][sl]
            if i > 0:  # propagate before W is updated
                # (member, batch, fan_in); a one-output layer is an outer product, not a GEMM
                da = dz * W if W.shape[1] == 1 else torch.bmm(dz, W)
            lr_i = lr if self.layer_lr is None else lr * self.layer_lr[i]
            self.opt.update(i, sl, W, self.b[i][sl], dz, inputs[i], lr_i, wd)
            if i > 0:
                if masks[i - 1] is not None:
                    da.mul_(masks[i - 1])
                dz = self._backprop_act(da, hidden[i - 1])  # (member, batch, fan_in)
        return loss

    def epoch(
        self,
        batches: list[tuple[torch.Tensor, ...]],
        sizes: Sequence[int],
        gen: torch.Generator | None,
        chunk: int,
    ) -> torch.Tensor:
        """One epoch of every member over ``batches`` (``epoch_batches``'s); returns each
        member's mean training loss over its ``sizes[id]`` rows: (member,)."""
        loss = torch.zeros(len(self.ids), device=self.W[0].device)
        for Xb, yb, w, active, count in batches:
            loss += self.step(Xb, yb, w, active, gen, chunk) * count
        return loss / torch.tensor([sizes[m] for m in self.ids], device=loss.device)

    def _backprop_act(self, da: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Gradient through the activation, from its output h; overwrites and returns da."""
        return self.act_grad(da, h)

    @torch.no_grad()
    def predict(self, X: torch.Tensor, rows: list[int]) -> list[torch.Tensor]:
        """Predictions of the members at ``rows`` for X (n, in), one (n, out) tensor each."""
        out = []
        for r in rows:
            a = X
            for i, (W, b) in enumerate(zip(self.W, self.b)):
                a = torch.addmm(b[r], a, W[r].T)
                if i < len(self.W) - 1:
                    a = self.act(a)
            out.append(a)
        return out

    @torch.no_grad()
    def losses(self, X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Weighted squared error of every member on its own rows: (member,).

        X (member, rows, in), y (member, rows, out), w (member, rows, 1) summing to 1 per member
        (0 on padding), so each member gets the MSE over its real rows. No dropout.
        """
        out = self.forward(X, False)[0]  # (member, rows, out)
        return ((out - y) ** 2 * w).sum(dim=(1, 2))

    def snapshot(self, rows: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Copies of the weights and biases of the members at ``rows``, layer by layer."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.W[0].device)
        return [(W.index_select(0, idx), b.index_select(0, idx)) for W, b in zip(self.W, self.b)]

    def module(self, row: int, template: MLP) -> MLP:
        """Copy the weights of the member at ``row`` into ``template`` and return it."""
        return load_member(list(zip(self.W, self.b)), row, template)


def load_member(weights: Sequence[tuple[torch.Tensor, torch.Tensor]], row: int,
                template: MLP) -> MLP:  # fmt: skip
    """Copy member ``row`` of stacked ``weights`` (per layer: W (member, out, in), b (member,
    1, out), as ``Population.snapshot`` returns them) into ``template``, and return it."""
    with torch.no_grad():
        for lin, (W, b) in zip(template.linear_layers(), weights):
            lin.weight.copy_(W[row])
            lin.bias.copy_(b[row, 0])
    return template
