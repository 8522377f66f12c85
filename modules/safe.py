"""A1111's ``modules.safe``: pickle checkpoints are read with ``torch.load(weights_only=True)`` here unless
``--disable-safe-unpickle``. A thin facade over ``modules.models.safe_load``."""
import torch

unsafe_torch_load = torch.load


def load(filename, *args, **kwargs):
    kwargs.setdefault("weights_only", True)
    return torch.load(filename, *args, **kwargs)
