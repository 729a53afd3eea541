"""aiscaler: autoscale GPU inference and training ahead of demand."""

__version__ = "0.1.0"
