"""Train the demand model: `aiscaler train` with the shipped configuration as the default.

CPU:            .venv/bin/python model/train.py --out model/checkpoint
One GPU:        the same command (CUDA and bf16 autocast are used when present)
Several GPUs:   torchrun --nproc_per_node=4 model/train.py --out model/checkpoint
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiscaler.forecast import train_cli

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=train_cli.HELP)
    train_cli.add_arguments(parser)
    parser.set_defaults(config=str(DEFAULT_CONFIG))
    return train_cli.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
