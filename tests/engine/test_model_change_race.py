"""A model change through any door during a running generation lands after it.

A generation on checkpoint A is held at its second denoiser call; meanwhile each door asks for checkpoint B.
The door must wait: the running picture is made whole by A (pixel-equal to A's picture made alone, and its
infotext names A), and B is loaded after the job ends. Every wait here is bounded.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modules.core import infotext
from modules.core.request import GenerationRequest, Processed
from modules.engine.hooks import GenerationHooks
from modules.settings import cmd_args
from tests import tiny_models

WAIT = 60.0  # seconds: far beyond what any step here takes, so a timeout means a hang
REQUEST = dict(prompt="a red circle", steps=6, width=64, height=64, seed=11, cfg_scale=5.0, sampler_name="Euler",
               do_not_save_samples=True, do_not_save_grid=True)


class _Hold:
    """Per-step callbacks that stop the generation at its second denoiser call until released."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def has(self, name: str) -> bool:
        return name == "cfg_denoiser"

    def run(self, name: str, params: Any) -> list:
        if name == "cfg_denoiser" and params.sampling_step == 1:
            self.reached.set()
            assert self.release.wait(WAIT), "the test never released the held generation"
        return []


class _HoldingHooks(GenerationHooks):
    def __init__(self, hold: _Hold) -> None:
        self.hold = hold

    def sampling_callbacks(self) -> _Hold:
        return self.hold


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("race")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "a.safetensors", "sd1")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=2), ckpt_dir / "b.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(data), "--api"], environ={})
    eng = webui.build_engine(args)
    eng.app = webui.create_app(eng, args)
    return eng


def _title(engine, stem: str) -> str:
    return next(c.title for c in engine.available_checkpoints() if Path(c.filename).stem == stem)


def _pixels(processed: Processed) -> np.ndarray:
    return np.asarray(processed.images[0].convert("RGB"))


@pytest.fixture(scope="module")
def pictures(engine) -> dict[str, np.ndarray]:
    """Each checkpoint's picture of REQUEST, made alone."""
    out = {}
    for stem in ("b", "a"):
        engine.select_checkpoint(_title(engine, stem))
        out[stem] = _pixels(engine.generate(GenerationRequest(**REQUEST)))
    assert not np.array_equal(out["a"], out["b"])  # the test could tell the two models apart
    return out


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict]:
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, result


def _race(engine, pictures, change: Callable[[], Any], *, door_blocks: bool = True) -> Any:
    """Hold a generation on A, make the change through a door, check the picture and that B is loaded after."""
    engine.select_checkpoint(_title(engine, "a"))
    hold = _Hold()
    gen_thread, gen = _in_thread(lambda: engine.generate(GenerationRequest(**REQUEST), _HoldingHooks(hold)))
    assert hold.reached.wait(WAIT)
    door_thread, door = _in_thread(change)
    door_thread.join(0.5)
    if door_blocks:
        assert door_thread.is_alive(), "the door returned while a generation was running"
    assert Path(engine.checkpoint_info.filename).stem == "a"  # nothing changed under the running job
    hold.release.set()
    gen_thread.join(WAIT)
    door_thread.join(WAIT)
    assert not gen_thread.is_alive() and not door_thread.is_alive()
    assert "error" not in gen, gen.get("error")
    assert "error" not in door, door.get("error")
    processed: Processed = gen["value"]
    assert np.array_equal(_pixels(processed), pictures["a"])
    assert infotext.parse_generation_parameters(processed.infotexts[0])["Model"] == "a"
    return door.get("value")


def _loaded(engine) -> str:
    return Path(engine.checkpoint_info.filename).stem


def test_api_options(engine, pictures):
    client = TestClient(engine.app)
    response = _race(engine, pictures, lambda: client.post("/sdapi/v1/options",
                                                           json={"sd_model_checkpoint": _title(engine, "b")}))
    assert response.status_code == 200
    assert _loaded(engine) == "b" and engine.options.get("sd_model_checkpoint") == _title(engine, "b")


def test_api_reload_checkpoint(engine, pictures):
    client = TestClient(engine.app)
    loads = engine.model_generation
    response = _race(engine, pictures, lambda: client.post("/sdapi/v1/reload-checkpoint"))
    assert response.status_code == 200 and engine.model_generation == loads + 2  # select a, then the reload


def test_page_settings_and_quicksettings(engine, pictures):
    from modules.page import settings as page_settings

    result = _race(engine, pictures,
                   lambda: page_settings.apply_settings(engine, {"sd_model_checkpoint": _title(engine, "b")}))
    assert result.errors == {} and result.changed == ["sd_model_checkpoint"]
    assert _loaded(engine) == "b"


def test_checkpoint_card(engine, pictures):
    client = TestClient(engine.app)
    service = engine.app.state.extra_networks

    def click_card() -> dict:
        response = client.post("/sd_extra_networks/checkpoint", json={"title": _title(engine, "b")})
        assert response.status_code == 202
        return service.switcher.wait(WAIT)

    status = _race(engine, pictures, click_card)
    assert status["state"] == "done" and _loaded(engine) == "b"


def test_override_settings_of_another_request(engine, pictures):
    from modules.scripting.host import ScriptHost

    request = GenerationRequest(**REQUEST, override_settings={"sd_model_checkpoint": _title(engine, "b")})
    other = _race(engine, pictures, lambda: ScriptHost.for_engine(engine).generate(request))
    assert np.array_equal(_pixels(other), pictures["b"])  # that request got its own model...
    assert engine.options.get("sd_model_checkpoint") == _title(engine, "a")  # ...and the setting is untouched
    after = engine.generate(GenerationRequest(**REQUEST))
    assert np.array_equal(_pixels(after), pictures["a"])


def test_override_is_restored_when_the_request_fails(engine):
    engine.select_checkpoint(_title(engine, "a"))
    before = engine.options.data()
    bad = GenerationRequest(**{**REQUEST, "sampler_name": "No such sampler"},
                            override_settings={"sd_model_checkpoint": _title(engine, "b"), "eta_ddim": 0.5})
    with pytest.raises(Exception):
        engine.generate(bad)
    assert engine.options.data() == before
    assert engine.options.get("eta_ddim") == before["eta_ddim"]
