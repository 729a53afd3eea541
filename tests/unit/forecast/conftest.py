"""Fixtures of the forecast tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from forecast_helpers import TINY

from aiscaler.forecast.network import QuantileMLP, save_checkpoint

# The machine is shared: one thread keeps the tiny trainings fast and predictable.
torch.set_num_threads(1)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, TINY, QuantileMLP(TINY))
    return folder
