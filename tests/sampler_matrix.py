"""The sampler × schedule-type matrix through the HTTP API, against A1111's algorithm re-run independently.

Each case posts one ``/sdapi/v1/txt2img`` request (demo model, 64×64, 10 steps, CFG 7, batch 2: seeds s and s+1)
to an app built the way ``webui.py`` builds it, decodes the PNGs, and compares the pixels with
:class:`tests.a1111_reference.Reference`. Shared by ``tests/server/test_sampler_matrix_api.py`` (one test per case)
and ``tools/sampler_matrix.py`` (a per-case table).
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a",
            "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++",
            "PLMS", "UniPC", "LCM"]
SCHEDULES = ["Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
             "Align Your Steps", "Simple", "Normal", "DDIM", "Beta"]
# A1111 ignores the schedule type for its timestep samplers: one case each
TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS", "UniPC"}
CASES = [(s, sc) for s in SAMPLERS for sc in SCHEDULES if s not in TIMESTEP_SAMPLERS or sc == "Automatic"]
PROMPT, NEGATIVE = "a red circle on a blue background", "blurry"
SEED, STEPS, CFG, SIZE = 1234, 10, 7.0, 64


def make_client(data_dir: Path):
    """A TestClient on the app ``webui.py`` would serve, on an empty data folder (so: the shipped demo model)."""
    from fastapi.testclient import TestClient

    import webui
    from modules.settings import cmd_args

    args = cmd_args.parse_args(["--data-dir", str(data_dir), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    return TestClient(webui.create_app(engine, args))


def api_pixels(client, sampler: str, schedule: str, *, steps: int = STEPS, seed: int = SEED,
               override_settings: dict | None = None) -> np.ndarray:
    payload = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": steps, "cfg_scale": CFG, "width": SIZE,
               "height": SIZE, "seed": seed, "batch_size": 2, "sampler_name": sampler, "scheduler": schedule,
               "send_images": True, "save_images": False}
    if override_settings:
        payload["override_settings"] = override_settings
    r = client.post("/sdapi/v1/txt2img", json=payload)
    if r.status_code != 200:
        raise AssertionError(f"{sampler} / {schedule}: HTTP {r.status_code} {r.text[:300]}")
    images = [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in r.json()["images"]]
    return np.stack([np.asarray(img) for img in images])


@dataclass
class Outcome:
    sampler: str
    schedule: str
    max_diff: int
    mean_diff: float

    @property
    def ok(self) -> bool:
        return self.max_diff <= 1


def compare(client, reference, sampler: str, schedule: str, *, steps: int = STEPS,
            override_settings: dict | None = None, ref_options: dict | None = None) -> Outcome:
    mine = api_pixels(client, sampler, schedule, steps=steps, override_settings=override_settings)
    ref = reference.txt2img(sampler, schedule, PROMPT, NEGATIVE, [SEED, SEED + 1], steps, CFG, SIZE, SIZE,
                            **(ref_options or {}))
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return Outcome(sampler, schedule, int(diff.max()), float(diff.mean()))
