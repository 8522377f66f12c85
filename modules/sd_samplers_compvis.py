"""A1111 1.5's ``modules.sd_samplers_compvis`` (DDIM/PLMS on ldm): gone from A1111 too; kept importable for
extensions that still import it behind a version check."""
