"""A1111's ``modules.textual_inversion`` package: facades only (see ``textual_inversion.py``)."""
