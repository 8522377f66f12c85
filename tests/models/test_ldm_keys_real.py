"""Every key of real single-file SD1 / SDXL checkpoints maps onto the architecture built from the
shipped configs, and the exporter writes the real names and shapes back.

The key lists (names, shapes, dtypes; no weights) come from sd-mecha's model configs
(``real_fixtures/manifests/sd-mecha``). Everything runs on the meta device: no weights, no network.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from modules.models import checkpoint_detect as cd
from modules.models.checkpoint_loader import build_empty_models, convert_original_state_dict, fit_text_encoder_keys
from modules.models.ldm_export import components_to_ldm

_LINE = re.compile(r"^    (\S+): \{shape: \[([^\]]*)\], dtype: (\w+)"
                   r"(?:, aliases: \[([^\]]*)\])?(?:, optional: (true|false))?\}$")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "int64": torch.int64, "int32": torch.int32}


def read_key_manifest(path: Path) -> dict[str, dict]:
    """sd-mecha model-config YAML -> {key: {shape, dtype, aliases, optional, component}}."""
    out: dict[str, dict] = {}
    component = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^  \w+:$", line):
            component = line.strip()[:-1]
            continue
        m = _LINE.match(line)
        if m:
            out[m[1]] = {
                "shape": tuple(int(x) for x in m[2].split(",") if x.strip()),
                "dtype": _DTYPES[m[3]],
                "aliases": [a.strip() for a in (m[4] or "").split(",") if a.strip()],
                "optional": m[5] == "true",
                "component": component,
            }
        elif line.startswith("    "):
            raise AssertionError(f"unparsed manifest line: {line[:120]}")
    return out


def meta_state_dict(manifest: dict[str, dict], *, optional: bool = True, aliases: bool = False,
                    skip=lambda k: False) -> dict[str, torch.Tensor]:
    sd = {}
    for key, e in manifest.items():
        if (e["optional"] and not optional) or skip(key):
            continue
        name = e["aliases"][0] if aliases and e["aliases"] else key
        sd[name] = torch.empty(e["shape"], dtype=e["dtype"], device="meta")
    return sd


CASES = {"sd1": "sd1-ldm.yaml", "sdxl": "sdxl-sgm.yaml"}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, real_fixtures):
    family = request.param
    manifest = read_key_manifest(real_fixtures / "manifests" / "sd-mecha" / CASES[family])
    shipped = {n: cd.shipped_config(family, n) for n in
               (["unet", "vae", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else []))}
    models = build_empty_models(shipped)
    expected = {n: {k: tuple(v.shape) for k, v in m.state_dict().items()} for n, m in models.items()}
    return family, manifest, shipped, models, expected


def _is_edm(key: str) -> bool:
    return key.startswith("edm_")  # CosXL-style EDM markers: a different model, tested in test_checkpoint_detect


def test_manifest_parsed(case):
    family, manifest, *_ = case
    assert len(manifest) > 1000
    assert all(len(e["shape"]) <= 4 for e in manifest.values())
    comps = {e["component"] for e in manifest.values()}
    assert {"vae", "diffuser", "clip_l"} <= comps


@pytest.mark.parametrize("variant", ["all-keys", "required-only", "old-clip-aliases"])
def test_real_keys_map_onto_the_shipped_architecture(case, variant):
    family, manifest, shipped, models, expected = case
    sd = meta_state_dict(manifest, optional=(variant != "required-only"),
                         aliases=(variant == "old-clip-aliases"), skip=_is_edm)
    sd = cd.normalize_keys(sd)
    det = cd.detect(sd)
    assert det.family == family and not det.is_inpainting and det.has_vae
    assert det.native_size == (1024 if family == "sdxl" else 512)
    # the shapes alone give back exactly the shipped configs
    for name, cfg in shipped.items():
        assert det.configs[name] == cfg, name

    converted, ignored = convert_original_state_dict(sd, det)
    assert ignored == []
    for name, exp in expected.items():
        got = converted[name]
        if name.startswith("text_encoder"):
            got = fit_text_encoder_keys(got, exp)
        got = {k: tuple(v.shape) for k, v in got.items()}
        missing = set(exp) - set(got)
        unexpected = set(got) - set(exp)
        assert not unexpected, f"{name}: {sorted(unexpected)[:5]}"
        if variant == "required-only" and name.startswith("text_encoder"):
            # pruned files may lack the unused final layer: exactly what the loader fills in
            allowed = set(fit_text_encoder_keys(dict.fromkeys(det.optional_text_keys[name]), exp))
            assert missing <= allowed, f"{name}: {sorted(missing - allowed)[:5]}"
        else:
            assert not missing, f"{name}: {sorted(missing)[:5]}"
        bad = [k for k in got if got[k] != exp[k]]
        assert not bad, f"{name}: {bad[:5]}"


def test_every_real_key_is_used_or_known_junk(case):
    """diffusers -> original layout again gives every weight key of the real file back."""
    family, manifest, shipped, models, expected = case
    sd = cd.normalize_keys(meta_state_dict(manifest, skip=_is_edm))
    det = cd.detect(sd)
    converted, _ = convert_original_state_dict(sd, det)
    for name, model in models.items():
        comp = converted[name]
        if name.startswith("text_encoder"):
            comp = fit_text_encoder_keys(comp, expected[name])
        model.load_state_dict(comp, strict=True, assign=True)  # meta tensors: checks names and shapes
    back = components_to_ldm(models, family)
    junk = {k for k in sd if k in cd.IGNORED_KEYS or k.startswith(cd.IGNORED_PREFIXES)
            or k.endswith("position_ids")}
    assert set(back) - {"v_pred", "ztsnr"} == set(sd) - junk
    for k, v in back.items():
        if k in sd:
            assert tuple(v.shape) == tuple(sd[k].shape), k


def test_exporter_writes_the_real_layout(case):
    """Built from the shipped configs, the exporter writes every required key of a real file with
    its real shape, and nothing a real file lacks."""
    family, manifest, shipped, models, expected = case
    out = components_to_ldm(models, family)
    real = {k: e for k, e in manifest.items()}
    required = {k for k, e in manifest.items() if not e["optional"]}
    assert required <= set(out), sorted(required - set(out))[:5]
    assert set(out) <= set(real), sorted(set(out) - set(real))[:5]
    for k, v in out.items():
        assert tuple(v.shape) == real[k]["shape"], k
    # the mid-block attention of the VAE is stored as 1x1 convolutions, as in real files
    assert tuple(out["first_stage_model.decoder.mid.attn_1.q.weight"].shape) == (512, 512, 1, 1)


def test_sdxl_pruned_text_encoders_load_with_defaults(real_fixtures):
    """A real SDXL file without the encoders' unused last layers still maps (sd-mecha marks them optional)."""
    manifest = read_key_manifest(real_fixtures / "manifests" / "sd-mecha" / "sdxl-sgm.yaml")
    sd = cd.normalize_keys(meta_state_dict(manifest, optional=False))
    det = cd.detect(sd)
    assert det.configs["text_encoder"]["num_hidden_layers"] == 12
    assert det.configs["text_encoder_2"]["num_hidden_layers"] == 32
    assert "encoder.layers.11.mlp.fc1.weight" in det.optional_text_keys["text_encoder"]
    assert "text_projection.weight" in det.optional_text_keys["text_encoder_2"]
