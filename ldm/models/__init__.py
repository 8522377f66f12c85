"""``ldm.models``: facades only."""
