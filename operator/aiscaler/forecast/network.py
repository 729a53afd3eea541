"""The demand model's network in torch, for training: `QuantileMLP`, its loss, and the
checkpoint writer. Needs the `aiscaler[train]` extra (torch); the operator runs the same network
in numpy (`aiscaler.forecast.model.QuantileNetwork`) from the checkpoint this writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from aiscaler.forecast.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    Float32Array,
    ModelConfig,
    Network,
    read_config,
    read_weights,
)


class QuantileMLP(nn.Module):
    """MLP with residual blocks; returns non-crossing normalised quantiles (n, horizon, Q)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.horizon = cfg.horizon
        self.n_quantiles = len(cfg.quantiles)
        self.median = cfg.median_index
        self.inp = nn.Linear(cfg.n_inputs, cfg.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU())
            for _ in range(cfg.blocks)
        )
        self.out = nn.Linear(cfg.hidden, cfg.horizon * self.n_quantiles)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        raw = self.out(h).view(-1, self.horizon, self.n_quantiles)
        m = self.median
        median = raw[:, :, m : m + 1]
        gaps = nn.functional.softplus(raw)
        above = median + torch.cumsum(gaps[:, :, m + 1 :], dim=2)
        below = median - torch.flip(torch.cumsum(torch.flip(gaps[:, :, :m], [2]), dim=2), [2])
        return torch.cat([below, median, above], dim=2)


def torch_forward(net: QuantileMLP) -> Network:
    """`net` as the numpy-in, numpy-out network `ModelForecaster` calls (to compare with the
    numpy network, or to use weights not written to a checkpoint yet)."""

    def forward(x: Float32Array, steps: int | None = None) -> Float32Array:
        with torch.inference_mode():
            out: Float32Array = net.eval()(torch.from_numpy(x))[:, :steps].numpy()
        return out

    return forward


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Mean pinball (quantile) loss; pred (n, H, Q), target (n, H), quantiles (Q,)."""
    diff = target[:, :, None] - pred
    return torch.mean(torch.maximum(quantiles * diff, (quantiles - 1) * diff))


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def save_checkpoint(path: str | Path, cfg: ModelConfig, net: QuantileMLP) -> None:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()
    }
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.to_json(), indent=2) + "\n")


def load_network(path: str | Path) -> tuple[ModelConfig, QuantileMLP]:
    """Read a checkpoint folder into the torch network (to fine-tune it); CheckpointError says
    what is missing or incompatible."""
    cfg = read_config(path)
    net = QuantileMLP(cfg)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in read_weights(path, cfg).items()})
    return cfg, net.eval()
