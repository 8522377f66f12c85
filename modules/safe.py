"""A1111's ``modules.safe``: pickle checkpoints are read with ``torch.load(weights_only=True)``. A thin facade;
the code lives in ``modules.scripting.a1111_misc``."""
from modules.scripting.a1111_misc import unsafe_torch_load, safe_load as load  # noqa: F401
