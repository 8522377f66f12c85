"""CFG rescale (Seshelle/CFG_Rescale_webui, unchanged) replaces ``sd_samplers_kdiffusion.CFGDenoiser.combine_denoised``
during a generation. Its module also imports A1111's ldm DDIM names (``from ldm.models.diffusion import ddim``),
which the app's ``ldm`` facade package gives: it loads as installed, and the guidance hook works: the picture
changes, the infotext names it, and the original guidance is back afterwards."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from modules.core.request import GenerationRequest
from modules.scripting import runtime
from tests import tiny_models

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "extensions" / "CFG_Rescale_webui"
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="the shared extension fixtures are not present")

BASE = dict(prompt="a cat", negative_prompt="", steps=6, width=64, height=64, cfg_scale=20.0, sampler_name="Euler",
            seed=11, do_not_save_samples=True, do_not_save_grid=True)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("cfg-rescale")
    ckpt = data / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt / "tiny.safetensors", "sd1")
    shutil.copytree(FIXTURE, data / "extensions" / "CFG_Rescale_webui", ignore=shutil.ignore_patterns(".git"))
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    yield engine
    runtime.unbind(engine)


def test_cfg_rescale_loads_and_changes_the_picture_with_its_infotext_key(engine):
    from modules import sd_samplers_kdiffusion

    ext = runtime.host(engine).extensions.find("CFG_Rescale_webui")
    assert ext.errors == [] and ext.scripts_loaded
    original = sd_samplers_kdiffusion.CFGDenoiser.combine_denoised
    plain = runtime.host(engine).generate(GenerationRequest(**BASE, alwayson_scripts={"CFG Rescale Extension": {"args": [0.0]}}))
    rescaled = runtime.host(engine).generate(GenerationRequest(**BASE, alwayson_scripts={"CFG Rescale Extension": {"args": [0.9]}}))
    assert "CFG Rescale: 0.9" in rescaled.infotexts[0] and "CFG Rescale" not in plain.infotexts[0]
    a = np.asarray(plain.images[0], dtype=np.int16)
    b = np.asarray(rescaled.images[0], dtype=np.int16)
    assert np.abs(a - b).mean() > 0.5
    assert sd_samplers_kdiffusion.CFGDenoiser.combine_denoised is original  # put back by its postprocess
    again = runtime.host(engine).generate(GenerationRequest(**BASE, alwayson_scripts={"CFG Rescale Extension": {"args": [0.0]}}))
    assert np.array_equal(np.asarray(again.images[0]), np.asarray(plain.images[0]))


def test_the_ldm_names_it_imports_are_the_apps_own():
    import ldm.models.diffusion.ddim as ddim
    from ldm.modules.diffusionmodules.util import make_ddim_sampling_parameters

    assert Path(ddim.__file__).resolve() == REPO / "ldm" / "models" / "diffusion" / "ddim.py"
    sigmas, alphas, prev = make_ddim_sampling_parameters(np.linspace(0.99, 0.01, 1000), np.array([1, 501, 999]), 0.0)
    assert np.allclose(sigmas, 0.0) and np.isclose(prev[0], 0.99) and np.isclose(alphas[1], np.linspace(0.99, 0.01, 1000)[501])
