"""--compile on a tiny SD1 checkpoint: LoRA sets and multipliers change the weights in place and never recompile;
a hypernetwork toggle costs one more graph, once; pictures equal the eager engine's.

Dynamo's compiles are counted by a backend that runs the captured graph as it is (the guards, and so the
recompiles, do not depend on the backend; Inductor's code generation would only cost the test minutes).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.core.request import GenerationRequest
from modules.settings import cmd_args
from tests import hypernet_files, network_files, tiny_models

COMPILES: list[int] = []  # one entry per graph Dynamo hands to the backend


def _counting_backend(gm: torch.fx.GraphModule, example_inputs):
    COMPILES.append(len(gm.graph.nodes))
    return gm.forward


torch._dynamo.register_backend(_counting_backend, name="sdwebui_counting_test")


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("compile")
    models = data / "models"
    components = tiny_models.tiny_sd1(seed=0)
    tiny_models.write_single_file(components, models / "Stable-diffusion" / "tiny.safetensors", "sd1")
    for seed, name in ((1, "lora_a"), (2, "lora_b")):
        network_files.save_safetensors(network_files.kohya_lora(components, seed=seed), models / "Lora" / f"{name}.safetensors")
    (models / "hypernetworks").mkdir(parents=True)
    hypernet_files.write_hypernetwork(models / "hypernetworks" / "hyper.pt", widths=(tiny_models.TINY_TEXT_WIDTH, 32, 64), seed=3)
    built = {}
    for name, flags in (("eager", []), ("compiled", ["--compile", "--compile-backend", "sdwebui_counting_test"])):
        engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data), *flags], environ={}))
        engine.ensure_model()
        built[name] = engine
    torch._dynamo.reset()
    COMPILES.clear()
    return built


def _pixels(engine, prompt: str, **kw) -> np.ndarray:
    req = dict(prompt=prompt, negative_prompt="", steps=3, width=64, height=64, cfg_scale=5.0, sampler_name="Euler",
               seed=11, do_not_save_samples=True, do_not_save_grid=True)
    req.update(kw)
    return np.asarray(engine.generate(GenerationRequest(**req)).images[0].convert("RGB"), dtype=np.int16)


def _same_picture(a: np.ndarray, b: np.ndarray) -> None:
    # The captured graph runs the same kernels: fp differences only, and the 8-bit picture shows none or a step.
    assert np.abs(a - b).max() <= 1


def test_unet_and_decoder_are_compiled_in_place(engines):
    model = engines["compiled"].model
    assert model.unet._compiled_call_impl is not None
    assert model.vae.decoder._compiled_call_impl is not None
    assert engines["eager"].model.unet._compiled_call_impl is None


def test_a_model_installed_again_keeps_its_compiled_graphs(engines):
    """The refiner puts the parked main model back through the same install step: it is not compiled again."""
    from modules.engine.compiled import CompileConfig, compile_model

    compiled = engines["compiled"]
    model = compiled.model
    before = (model.unet._compiled_call_impl, model.vae.decoder._compiled_call_impl)
    compile_model(model, CompileConfig.from_args(compiled.args, compiled.devices.device), "none")
    assert (model.unet._compiled_call_impl, model.vae.decoder._compiled_call_impl) == before


def test_lora_changes_never_recompile_and_match_eager(engines):
    eager, compiled = engines["eager"], engines["compiled"]
    _same_picture(_pixels(compiled, "a cat"), _pixels(eager, "a cat"))
    first = len(COMPILES)
    assert first >= 2  # the UNet and the decoder
    unet_weight = compiled.model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight
    address = unet_weight.data_ptr()
    plain = _pixels(eager, "a cat")
    for prompt in ("a cat <lora:lora_a:0.8>", "a cat <lora:lora_a:0.3>", "a cat <lora:lora_b:1>",
                   "a cat <lora:lora_a:0.5> <lora:lora_b:0.7>", "a cat", "a cat <lora:lora_b:-1>"):
        picture = _pixels(compiled, prompt)
        _same_picture(picture, _pixels(eager, prompt))
        if "lora" in prompt:
            assert np.abs(picture - plain).max() > 0, f"{prompt}: the LoRA did nothing"
        assert unet_weight.data_ptr() == address
    assert len(COMPILES) == first, f"{len(COMPILES) - first} recompiles across LoRA changes"


def test_sampler_change_does_not_recompile(engines):
    compiled = engines["compiled"]
    _pixels(compiled, "a dog")
    before = len(COMPILES)
    for sampler in ("DPM++ 2M", "Heun", "DDIM"):
        _same_picture(_pixels(compiled, "a dog", sampler_name=sampler), _pixels(engines["eager"], "a dog", sampler_name=sampler))
    assert len(COMPILES) == before


def test_hypernetwork_toggle_recompiles_once(engines):
    eager, compiled = engines["eager"], engines["compiled"]
    _pixels(compiled, "a bird")
    before = len(COMPILES)
    on = _pixels(compiled, "a bird <hypernet:hyper:1>")
    _same_picture(on, _pixels(eager, "a bird <hypernet:hyper:1>"))
    after_first_toggle = len(COMPILES)
    assert after_first_toggle - before <= 2  # the UNet with the hypernetwork processors (and a guard split)
    for prompt in ("a bird", "a bird <hypernet:hyper:1>", "a bird", "a bird <hypernet:hyper:1>"):
        _pixels(compiled, prompt)
    assert len(COMPILES) == after_first_toggle
    assert np.abs(on - _pixels(compiled, "a bird")).max() > 0


def test_cpu_compile_options_keep_conv_layouts_and_run():
    """On the CPU inductor must not convert conv weights to channels-last at every call (they are graph inputs):
    the options say so, keep the mode's own options, and torch.compile accepts them."""
    from modules.engine.compiled import CompileConfig, compile_options

    cpu = compile_options(CompileConfig(True, "default", "inductor"), on_cuda=False)
    assert cpu == {"backend": "inductor", "options": {"layout_optimization": False}}
    autotune = compile_options(CompileConfig(True, "max-autotune", "inductor"), on_cuda=False)["options"]
    assert autotune["max_autotune"] is True and autotune["layout_optimization"] is False
    assert compile_options(CompileConfig(True, "reduce-overhead", "inductor"), on_cuda=True) == {
        "backend": "inductor", "mode": "reduce-overhead"}
    assert compile_options(CompileConfig(True, "default", "sdwebui_counting_test"), on_cuda=False) == {
        "backend": "sdwebui_counting_test"}

    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = conv(x)
        got = torch.compile(conv, **cpu)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
