"""One local Ray cluster of 2 replicas for the whole directory: Ray starts in ~25 s on 2 shared cores."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from modules.cluster import runtime

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo" / "sd-demo-shapes-64.safetensors"
LORA = REPO / "models" / "Lora" / "sd-demo-striped.safetensors"


def cluster_data_dir(root: Path) -> Path:
    """A data dir with two checkpoints (the demo model and a tiny random SD1) and the demo LoRA."""
    from tests import tiny_models

    ckpts = root / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    os.symlink(DEMO, ckpts / "demo-a.safetensors")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpts / "tiny-b.safetensors", "sd1")
    loras = root / "models" / "Lora"
    loras.mkdir(parents=True)
    os.symlink(LORA, loras / LORA.name)
    return root


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory):
    if not runtime.ray_available():
        pytest.skip("Ray Serve is not installed (pip install '.[cluster]'): the cluster tests need it")
    import webui
    from modules.settings import cmd_args

    data = cluster_data_dir(tmp_path_factory.mktemp("cluster"))
    flags = ["--data-dir", str(data), "--api", "--replicas", "2"]
    args = cmd_args.parse_args(flags, environ={})
    engine = webui.build_engine(args)
    cluster = webui.attach_cluster(engine, args)
    # The reference: one ordinary Engine over the same files, in this process.
    ref_args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    reference = webui.build_engine(ref_args)
    try:
        yield {"engine": engine, "args": args, "cluster": cluster, "reference": reference, "data": data}
    finally:
        from modules.scripting.host import ScriptHost

        ScriptHost.for_engine(engine).close()
        cluster.shutdown()
