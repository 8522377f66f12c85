"""``ldm.modules``: facades only."""
