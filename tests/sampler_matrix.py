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


def init_image() -> Image.Image:
    """A 64×64 picture for the img2img cases: a red disc on a blue background."""
    from PIL import ImageDraw

    img = Image.new("RGB", (SIZE, SIZE), (30, 60, 200))
    ImageDraw.Draw(img).ellipse((14, 18, 42, 46), fill=(220, 30, 30))
    return img


def api_img2img_pixels(client, sampler: str, schedule: str, image: Image.Image, denoising: float, *,
                       steps: int = STEPS, seed: int = SEED) -> np.ndarray:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    payload = {"init_images": [base64.b64encode(buf.getvalue()).decode()], "denoising_strength": denoising,
               "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": steps, "cfg_scale": CFG, "width": SIZE,
               "height": SIZE, "seed": seed, "batch_size": 2, "sampler_name": sampler, "scheduler": schedule,
               "send_images": True, "save_images": False}
    r = client.post("/sdapi/v1/img2img", json=payload)
    if r.status_code != 200:
        raise AssertionError(f"img2img {sampler} / {schedule}: HTTP {r.status_code} {r.text[:300]}")
    images = [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in r.json()["images"]]
    return np.stack([np.asarray(img) for img in images])


def compare_img2img(client, reference, sampler: str, schedule: str, denoising: float = 0.6, *,
                    steps: int = STEPS) -> Outcome:
    image = init_image()
    mine = api_img2img_pixels(client, sampler, schedule, image, denoising, steps=steps)
    ref = reference.img2img(sampler, schedule, np.asarray(image), denoising, PROMPT, NEGATIVE, [SEED, SEED + 1],
                            steps, CFG)
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return Outcome(sampler, schedule, int(diff.max()), float(diff.mean()))


def compare_hires(client, reference, sampler: str, schedule: str, denoising: float = 0.6, *,
                  steps: int = STEPS) -> Outcome:
    """txt2img with the hires fix ("Latent" upscaler, ×2, same sampler, steps = the first pass's)."""
    payload = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": steps, "cfg_scale": CFG, "width": SIZE,
               "height": SIZE, "seed": SEED, "batch_size": 2, "sampler_name": sampler, "scheduler": schedule,
               "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent", "denoising_strength": denoising,
               "send_images": True, "save_images": False}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    if r.status_code != 200:
        raise AssertionError(f"hires {sampler} / {schedule}: HTTP {r.status_code} {r.text[:300]}")
    mine = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB"))
                     for b in r.json()["images"]])
    ref = reference.hires(sampler, schedule, PROMPT, NEGATIVE, [SEED, SEED + 1], steps, CFG, denoising)
    diff = np.abs(mine.astype(np.int16) - ref.astype(np.int16))
    return Outcome(sampler, schedule, int(diff.max()), float(diff.mean()))
