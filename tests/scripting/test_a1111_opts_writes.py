"""``shared.opts`` writes from an extension: the checkpoint and the VAE change through the Engine (they wait for the
running generation, which is made whole by its own model), a plain setting is set at once, as in A1111, and a
refused value changes nothing. The race harness is the engine's own (tests/engine/test_model_change_race.py)."""
from __future__ import annotations

import threading

from modules.scripting import runtime
from tests.engine.test_model_change_race import (  # noqa: F401 - fixtures
    WAIT, _Hold, _HoldingHooks, _in_thread, _loaded, _race, _title, engine, pictures, REQUEST,
)
from modules.core.request import GenerationRequest


def _opts(engine):
    with runtime.using(engine):
        from modules import shared

        return shared.opts


def _with_engine(engine, fn):
    def run():
        with runtime.using(engine):
            return fn()
    return run


def test_opts_attribute_write_of_the_checkpoint_waits_for_the_running_generation(engine, pictures):
    opts = _opts(engine)
    _race(engine, pictures, _with_engine(engine, lambda: setattr(opts, "sd_model_checkpoint", _title(engine, "b"))))
    assert _loaded(engine) == "b" and engine.options.get("sd_model_checkpoint") == _title(engine, "b")


def test_opts_set_and_opts_data_take_the_same_path(engine, pictures):
    opts = _opts(engine)
    assert _race(engine, pictures, _with_engine(engine, lambda: opts.set("sd_model_checkpoint", "b"))) is True
    assert _loaded(engine) == "b"  # "b" is resolved to the checkpoint's title as A1111 does
    engine.select_checkpoint(_title(engine, "a"))
    _race(engine, pictures, _with_engine(engine, lambda: opts.data.__setitem__("sd_model_checkpoint", _title(engine, "b"))))
    assert _loaded(engine) == "b"


def test_a_plain_setting_is_set_at_once_during_a_generation(engine):
    opts = _opts(engine)
    engine.select_checkpoint(_title(engine, "a"))
    hold = _Hold()
    gen_thread, gen = _in_thread(lambda: engine.generate(GenerationRequest(**REQUEST), _HoldingHooks(hold)))
    assert hold.reached.wait(WAIT)
    try:
        setter = threading.Thread(target=_with_engine(engine, lambda: setattr(opts, "jpeg_quality", 61)), daemon=True)
        setter.start()
        setter.join(WAIT)
        assert not setter.is_alive() and engine.options.get("jpeg_quality") == 61
    finally:
        hold.release.set()
        gen_thread.join(WAIT)
    assert "error" not in gen


def test_an_unknown_checkpoint_is_refused_and_changes_nothing(engine):
    opts = _opts(engine)
    engine.select_checkpoint(_title(engine, "a"))
    assert opts.set("sd_model_checkpoint", "no-such-model") is False
    assert _loaded(engine) == "a" and engine.options.get("sd_model_checkpoint") == _title(engine, "a")
