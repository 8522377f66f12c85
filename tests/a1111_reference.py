"""A1111 v1.10.1's txt2img sampling, re-run independently of this project's sampling code (a test reference).

Nothing here imports ``modules.core.sampling`` or ``modules.engine``: the demo checkpoint is read with diffusers'
own single-file converters (``diffusers.loaders.single_file_utils``) into diffusers/transformers modules built
from the demo model's architecture (``tools/demo_model``), the UNet is wrapped with k-diffusion's
``DiscreteEpsDDPMDenoiser`` over the model's ``alphas_cumprod``, CFG is applied to the denoised predictions as
A1111's ``CFGDenoiser`` does, and the samplers are k-diffusion's own functions (A1111 calls them) with A1111's
noise plumbing, or, for A1111's own samplers (Restart, LCM, DDIM, DDIM CFG++, PLMS, UniPC), written here from the
facts in ``shared/spec/a1111-sampling.md`` and the UniPC authors' published algorithm. Pictures are decoded one
image at a time and converted to 8 bits by truncation, as A1111 does.

``Reference.txt2img(sampler, schedule, prompt, negative, seeds, steps, cfg)`` → uint8 array (batch, H, W, 3).
"""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from tests import kdiffusion_ref

REPO = Path(__file__).resolve().parents[1]
DEMO_CKPT = REPO / "models" / "demo" / "sd-demo-shapes-64.safetensors"
ks, kext = kdiffusion_ref.load()

# name -> (k-diffusion function, extra keyword arguments A1111 gives it)
K_FUNCS = {
    "DPM++ 2M": ("sample_dpmpp_2m", {}), "DPM++ SDE": ("sample_dpmpp_sde", {}),
    "DPM++ 2M SDE": ("sample_dpmpp_2m_sde", {}), "DPM++ 2M SDE Heun": ("sample_dpmpp_2m_sde", {"solver_type": "heun"}),
    "DPM++ 2S a": ("sample_dpmpp_2s_ancestral", {}), "DPM++ 3M SDE": ("sample_dpmpp_3m_sde", {}),
    "Euler a": ("sample_euler_ancestral", {}), "Euler": ("sample_euler", {}), "LMS": ("sample_lms", {}),
    "Heun": ("sample_heun", {}), "DPM2": ("sample_dpm_2", {}), "DPM2 a": ("sample_dpm_2_ancestral", {}),
    "DPM fast": ("sample_dpm_fast", {}), "DPM adaptive": ("sample_dpm_adaptive", {}),
}
# A1111's sampler options (spec §7.1): default schedule, Brownian noise, discard penultimate σ
DEFAULT_SCHEDULE = {"DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
                    "DPM++ 2M SDE Heun": "exponential", "DPM++ 2S a": "karras", "DPM++ 3M SDE": "exponential",
                    "DPM2": "karras", "DPM2 a": "karras", "Restart": "karras"}
BROWNIAN = {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}
DISCARD_PENULTIMATE = {"DPM2", "DPM2 a", "DPM++ 3M SDE"}
TIMESTEP_SAMPLERS = ("DDIM", "DDIM CFG++", "PLMS", "UniPC")
SCHEDULE_LABELS = {"Automatic": "automatic", "Uniform": "uniform", "Karras": "karras", "Exponential": "exponential",
                   "Polyexponential": "polyexponential", "SGM Uniform": "sgm_uniform", "KL Optimal": "kl_optimal",
                   "Align Your Steps": "align_your_steps", "Simple": "simple", "Normal": "normal", "DDIM": "ddim",
                   "Beta": "beta"}
AYS_SD15 = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]


# --- the model, loaded with diffusers' own converters ---------------------------------------------------------------


def ldm_alphas_cumprod() -> torch.Tensor:
    """LDM's ``register_schedule``: betas linear in sqrt space in float64, cumprod, stored as float32."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.tensor(np.cumprod(1.0 - betas.numpy(), axis=0), dtype=torch.float32)


def load_demo(path: Path = DEMO_CKPT):
    """(unet, vae, text_encoder, tokenizer) of the demo checkpoint, read with diffusers' single-file converters."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders import single_file_utils as sfu
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tools.demo_model.train_model import Arch, component_configs

    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    cfgs = component_configs(Arch())
    unet = UNet2DConditionModel.from_config(cfgs["unet"])
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(sd, unet.config))
    vae = AutoencoderKL.from_config(cfgs["vae"])
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(sd, vae.config))
    te_cfg = {k: v for k, v in cfgs["text_encoder"].items() if k not in ("torch_dtype", "dtype")}
    te = CLIPTextModel(CLIPTextConfig.from_dict(te_cfg))
    te_sd = sfu.convert_ldm_clip_checkpoint(sd)
    te_sd.pop("text_model.embeddings.position_ids", None)
    if not any(k.startswith("text_model.") for k in te.state_dict()):  # newer transformers: no outer prefix
        te_sd = {k.removeprefix("text_model."): v for k, v in te_sd.items()}
    te.load_state_dict(te_sd)
    tok_dir = REPO / "modules" / "models" / "model_configs" / "clip_tokenizer"
    tok = CLIPTokenizer(vocab=str(tok_dir / "vocab.json"), merges=str(tok_dir / "merges.txt"),
                        pad_token="<|endoftext|>")
    return unet.eval(), vae.eval(), te.eval(), tok


class UNetEps(torch.nn.Module):
    """What k-diffusion's DiscreteEpsDDPMDenoiser wraps: ``(x, t, cond) -> ε``."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]


class LCMDenoiser(kext.DiscreteEpsDDPMDenoiser):
    """A1111's LCM denoiser: ᾱ of the 50-step original grid (t = 19, 39, …, 999), t snapped to that grid, and
    the consistency-model output ``c_out·x₀ + c_skip·x`` with σ_data 0.5 at 10·t."""

    def __init__(self, model, abar):
        self.skip = 1000 // 50
        grid = torch.stack([abar[999 - x * self.skip] for x in range(50)]).flip(0)
        super().__init__(model, grid, quantize=None)

    def get_sigmas(self, n=None):
        if n is None:
            return ks.append_zero(self.sigmas.flip(0))
        t = torch.linspace(self.sigma_to_t(self.sigma_max), self.sigma_to_t(self.sigma_min), n)
        return ks.append_zero(self.t_to_sigma(t))

    def sigma_to_t(self, sigma, quantize=None):
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip + (self.skip - 1)

    def t_to_sigma(self, t):
        pos = torch.clamp(((t - (self.skip - 1)) / self.skip).float(), min=0, max=len(self.sigmas) - 1)
        return super().t_to_sigma(pos)

    def forward(self, x, sigma, **kwargs):
        c_out, c_in = [kdiffusion_ref._append_dims(v, x.ndim) for v in self.get_scalings(sigma)]
        eps = self.get_eps(x * c_in, self.sigma_to_t(sigma), **kwargs)
        denoised = x + eps * c_out
        st = kdiffusion_ref._append_dims(self.sigma_to_t(sigma), x.ndim) * 10.0
        return st / (st ** 2 + 0.25) ** 0.5 * denoised + 0.25 / (st ** 2 + 0.25) * x


class ImageNoise:
    """A1111's ImageRNG: one generator per image seeded with its seed; each draw is the next tensor of each."""

    def __init__(self, seeds, shape):
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.shape = shape

    def next(self):
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.gens])


class Hijack:
    """A1111 replaces k-diffusion's ``torch.randn_like`` with the next draw of the image streams."""

    def __init__(self, noise):
        self.noise = noise

    def __getattr__(self, item):
        if item == "randn_like":
            return lambda x: self.noise.next().to(x)
        return getattr(torch, item)


# --- schedules (spec §7.2) ------------------------------------------------------------------------------------------


def schedule_sigmas(inner, sampler: str, schedule: str, steps: int) -> torch.Tensor:
    lo, hi = inner.sigmas[0].item(), inner.sigmas[-1].item()
    discard = sampler in DISCARD_PENULTIMATE
    n = steps + 1 if discard else steps
    name = DEFAULT_SCHEDULE.get(sampler) if schedule == "automatic" else schedule
    zero = torch.zeros(1)
    if name in (None, "uniform"):
        s = inner.get_sigmas(n)
    elif name == "karras":
        s = ks.get_sigmas_karras(n, lo, hi)
    elif name == "exponential":
        s = ks.get_sigmas_exponential(n, lo, hi)
    elif name == "polyexponential":
        s = ks.get_sigmas_polyexponential(n, lo, hi)
    elif name in ("sgm_uniform", "normal"):
        t = torch.linspace(inner.sigma_to_t(torch.tensor(hi)), inner.sigma_to_t(torch.tensor(lo)),
                           n + (name == "sgm_uniform"))
        t = t[:-1] if name == "sgm_uniform" else t
        s = torch.cat([torch.stack([inner.t_to_sigma(v) for v in t]).float(), zero])
    elif name == "kl_optimal":  # A1111's formula: n + 1 values from σ_max down to σ_min, no 0 appended
        i = torch.arange(n + 1) / n
        s = torch.tan(i * torch.arctan(torch.tensor(lo)) + (1.0 - i) * torch.arctan(torch.tensor(hi)))
    elif name == "align_your_steps":
        ys = np.exp(np.interp(np.linspace(0, 1, n), np.linspace(0, 1, 11), np.log(AYS_SD15[::-1])))[::-1]
        s = torch.cat([torch.tensor(ys.copy(), dtype=torch.float32), zero])
    elif name == "simple":
        idx = [len(inner.sigmas) - 1 - int(x * len(inner.sigmas) / n) for x in range(n)]
        s = torch.cat([inner.sigmas[idx], zero])
    elif name == "ddim":
        s = torch.cat([inner.sigmas[1::max(len(inner.sigmas) // n, 1)].flip(0), zero])
    elif name == "beta":
        ppf = stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6)
        s = torch.cat([torch.tensor(lo + ppf * (hi - lo), dtype=torch.float32), zero])
    else:
        raise ValueError(name)
    if discard:
        s = torch.cat([s[:-2], s[-1:]])
    return s


# --- A1111's own σ-space samplers ---------------------------------------------------------------------------------


def restart(model, x, sigmas, noise: ImageNoise, s_noise=1.0):
    """Heun on the schedule; from 20 steps, a Karras schedule of fewer steps plus restart segments that jump
    from σ≈0.1 back up to σ≈2 with fresh noise (A1111's ``restart_list``)."""
    ones = x.new_ones([x.shape[0]])
    steps = len(sigmas) - 1
    segments = {}
    if steps >= 20:
        seg_steps, times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = ks.get_sigmas_karras(steps - seg_steps * times, sigmas[-2].item(), sigmas[0].item())
        segments = {int(torch.argmin((sigmas - 0.1).abs())): (seg_steps + 1, times, 2.0)}
    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in segments:
            n, times, top = segments[i + 1]
            top_idx = int(torch.argmin((sigmas - top).abs()))
            if top_idx < i + 1:
                seg = ks.get_sigmas_karras(n, sigmas[i + 1].item(), sigmas[top_idx].item())[:-1]
                pairs += list(zip(seg[:-1], seg[1:])) * times
    prev = None
    for s, s_next in pairs:
        if prev is not None and prev < s:
            x = x + noise.next() * s_noise * (s ** 2 - prev ** 2) ** 0.5
        d = ks.to_d(x, s, model(x, s * ones))
        if s_next == 0:
            x = x + d * (s_next - s)
        else:
            x2 = x + d * (s_next - s)
            d2 = ks.to_d(x2, s_next, model(x2, s_next * ones))
            x = x + (d + d2) / 2 * (s_next - s)
        prev = s_next
    return x


def lcm(model, x, sigmas, noise: ImageNoise):
    ones = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x = model(x, sigmas[i] * ones)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise.next()
    return x


# --- A1111's timestep samplers: grid range(0, 1000, 1000 // steps) + 1, len − 1 steps ------------------------------


def a1111_grid(steps: int) -> torch.Tensor:
    return torch.clip(torch.tensor(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)


def ddim(eps_fn, x, abar, ts, noise: ImageNoise, eta=0.0, cfgpp=False):
    """DDIM from ᾱ of the last grid entry to ᾱ of the second; DDIM CFG++ re-noises along the unconditional ε."""
    for k in range(len(ts) - 1, 0, -1):
        a, a_prev = abar[ts[k]].item(), abar[ts[k - 1]].double().item()
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a) * (1 - a / a_prev))
        e, e_uncond = eps_fn(x, float(ts[k]))
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        direction = e_uncond if cfgpp else e
        x = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma ** 2) * direction + sigma * noise.next()
    return x


def plms(eps_fn, x, abar, ts):

    def step(x, e, k):
        a, a_prev = abar[ts[k]].item(), abar[ts[k - 1]].double().item()
        x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * e

    history = []
    for k in range(len(ts) - 1, 0, -1):
        e = eps_fn(x, float(ts[k]))[0]
        if not history:  # pseudo improved Euler: ε averaged with ε at the next grid point
            e_mix = (e + eps_fn(step(x, e, k), float(ts[k - 1]))[0]) / 2
        elif len(history) == 1:
            e_mix = (3 * e - history[-1]) / 2
        elif len(history) == 2:
            e_mix = (23 * e - 16 * history[-1] + 5 * history[-2]) / 12
        else:
            e_mix = (55 * e - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
        history = (history + [e])[-3:]
        x = step(x, e_mix, k)
    return x


class VP:
    """The discrete schedule as a VP process on t ∈ (0, 1]: log α linear in t between t_n = (n + 1) / N."""

    def __init__(self, abar):
        self.n = len(abar)
        self.t = np.linspace(0.0, 1.0, self.n + 1)[1:]
        self.log_alpha = 0.5 * np.log(abar.double().numpy())

    def log_alpha_at(self, t: float) -> float:
        # linear between neighbours, extended linearly past the ends (the authors' interpolate_fn)
        k = int(np.clip(np.searchsorted(self.t, t), 1, self.n - 1))
        t0, t1, y0, y1 = self.t[k - 1], self.t[k], self.log_alpha[k - 1], self.log_alpha[k]
        return float(y0 + (t - t0) * (y1 - y0) / (t1 - t0))

    def alpha(self, t):
        return math.exp(self.log_alpha_at(t))

    def sigma(self, t):
        return math.sqrt(1.0 - math.exp(2 * self.log_alpha_at(t)))

    def lam(self, t):
        return math.log(self.alpha(t)) - math.log(self.sigma(t))

    def t_of_lambda(self, lam):
        log_alpha = -0.5 * np.logaddexp(0.0, -2.0 * lam)
        xs, ys = self.log_alpha[::-1], self.t[::-1]
        k = int(np.clip(np.searchsorted(xs, log_alpha), 1, self.n - 1))
        return float(ys[k - 1] + (log_alpha - xs[k - 1]) * (ys[k] - ys[k - 1]) / (xs[k] - xs[k - 1]))


def unipc_times(vp: VP, skip_type: str, n: int, t_start: float = 1.0) -> list[float]:
    t_end = 1.0 / vp.n
    if skip_type == "time_uniform":
        return torch.linspace(t_start, t_end, n + 1).tolist()
    if skip_type == "time_quadratic":
        return torch.linspace(t_start ** 0.5, t_end ** 0.5, n + 1).pow(2).tolist()
    lams = torch.linspace(vp.lam(t_start), vp.lam(t_end), n + 1).tolist()
    return [vp.t_of_lambda(v) for v in lams]


def unipc(eps_fn, x, abar, steps, variant="bh1", skip_type="time_uniform", order=3, lower_order_final=True,
          t_start=1.0):
    """UniPC (Zhao et al. 2023) with data prediction, as the authors publish it: a multistep predictor UniP-p and
    the corrector UniC, B(h) = h (bh1) or e^h − 1 (bh2), or the vary-coefficient form (``vary_coeff``).
    ``eps_fn`` gets the model time 1000·(t − 1/N)."""
    vp = VP(abar)
    times = unipc_times(vp, skip_type, steps, t_start)

    def x0_pred(x, t):
        e = eps_fn(x, (t - 1.0 / vp.n) * 1000.0)[0]
        return (x - vp.sigma(t) * e) / vp.alpha(t)

    def update(x, hist, t, p, correct):
        (t0, m0) = hist[-1]
        h = vp.lam(t) - vp.lam(t0)
        hh = -h
        rs = [(vp.lam(hist[-(i + 1)][0]) - vp.lam(t0)) / h for i in range(1, p)]
        ds = [(hist[-(i + 1)][1] - m0) / r for i, r in zip(range(1, p), rs)]
        rs = rs + [1.0]
        a_t, s_t, s_0 = vp.alpha(t), vp.sigma(t), vp.sigma(t0)
        phi1 = math.expm1(hh)
        base = s_t / s_0 * x - a_t * phi1 * m0
        # h·φ_k(h) for k ≥ 1: φ_{k+1} = (φ_k − 1/k!) / h
        phis = [phi1]
        fact = 1
        for k in range(1, p + 2):
            phis.append(phis[-1] / hh - 1.0 / fact)
            fact *= k + 1
        m_t = None
        if variant == "vary_coeff":
            c = np.array([[r ** k / math.factorial(k + 1) for k in range(p)] for r in rs])
            a_pred = np.linalg.inv(c[:-1, :-1]) if ds else None
            x_t = base
            for k in range(p - 1):
                x_t = x_t - a_t * phis[k + 1] * sum(w * d for w, d in zip(a_pred[k], ds))
            if correct:
                a_corr = np.linalg.inv(c)
                m_t = x0_pred(x_t, t)
                x_t = base
                last = 0
                for k in range(p - 1):
                    x_t = x_t - a_t * phis[k + 1] * sum(w * d for w, d in zip(a_corr[k][:-1], ds))
                    last = k
                x_t = x_t - a_t * phis[p] * (m_t - m0) * a_corr[last][-1]
            return x_t, m_t
        b_h = hh if variant == "bh1" else math.expm1(hh)
        rmat = np.array([[r ** (i - 1) for r in rs] for i in range(1, p + 1)])
        b = np.array([phis[i] * math.factorial(i) / b_h for i in range(1, p + 1)])
        x_t = base
        if ds:
            rho_p = [0.5] if p == 2 else np.linalg.solve(rmat[:-1, :-1], b[:-1])
            x_t = base - a_t * b_h * sum(w * d for w, d in zip(rho_p, ds))
        if correct:
            rho_c = [0.5] if p == 1 else np.linalg.solve(rmat, b)
            m_t = x0_pred(x_t, t)
            res = sum(w * d for w, d in zip(rho_c[:-1], ds)) if ds else 0
            x_t = base - a_t * b_h * (res + rho_c[-1] * (m_t - m0))
        return x_t, m_t

    hist = [(times[0], x0_pred(x, times[0]))]
    for k in range(1, steps + 1):
        p = min(order, k) if k < order else (min(order, steps + 1 - k) if lower_order_final else order)
        x, m = update(x, hist[-order:], times[k], p, k != steps)
        if k < steps:
            hist.append((times[k], m if m is not None else x0_pred(x, times[k])))
    return x


# --- the whole txt2img run ------------------------------------------------------------------------------------------


class Reference:
    def __init__(self, path: Path = DEMO_CKPT):
        self.unet, self.vae, self.text_encoder, self.tokenizer = load_demo(path)
        self.abar = ldm_alphas_cumprod()
        self.eps_model = UNetEps(self.unet)
        self.denoiser = kext.DiscreteEpsDDPMDenoiser(self.eps_model, self.abar, quantize=False)
        self.lcm_denoiser = LCMDenoiser(self.eps_model, self.abar)
        self._runs: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, text: str) -> torch.Tensor:
        """One 75-token chunk: BOS, tokens, EOS padding; the encoder's last hidden state (clip skip 1)."""
        ids = self.tokenizer(text, truncation=False, add_special_tokens=False)["input_ids"][:75]
        row = [self.tokenizer.bos_token_id] + ids + [self.tokenizer.eos_token_id] * (76 - len(ids))
        return self.text_encoder(torch.tensor([row]))[0]

    @torch.no_grad()
    def txt2img(self, sampler: str, schedule: str, prompt: str, negative: str, seeds: list[int], steps: int,
                cfg: float, width: int = 64, height: int = 64, **options) -> np.ndarray:
        noise = ImageNoise(seeds, (4, height // 8, width // 8))
        return self.decode(self._run(sampler, schedule, prompt, negative, seeds, steps, cfg, noise, None, 0.0, options))

    @torch.no_grad()
    def img2img(self, sampler: str, schedule: str, image: np.ndarray, denoising: float, prompt: str, negative: str,
                seeds: list[int], steps: int, cfg: float, **options) -> np.ndarray:
        """``image``: (H, W, 3) uint8 at the output size. Encoded to the latent distribution's *mean* (A1111 samples
        it with the global RNG, which no reference can repeat), then A1111's img2img start: the last
        ``int(steps·denoising) + 1`` σ, from ``init + noise·σ_start`` (timestep samplers: the grid's first
        ``t_enc`` entries from ``√ᾱ·init + √(1−ᾱ)·noise``)."""
        pix = torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        init = self.vae.encode(2.0 * pix - 1.0).latent_dist.mean * self.vae.config.scaling_factor
        init = init.expand(len(seeds), -1, -1, -1)
        noise = ImageNoise(seeds, tuple(init.shape[1:]))
        return self.decode(self._run(sampler, schedule, prompt, negative, seeds, steps, cfg, noise, init, denoising,
                                     options))

    @torch.no_grad()
    def hires(self, sampler: str, schedule: str, prompt: str, negative: str, seeds: list[int], steps: int, cfg: float,
              denoising: float, scale: int = 2, width: int = 64, height: int = 64) -> np.ndarray:
        """txt2img, the latent upscaled ("Latent": bilinear, no antialias), then A1111's hires pass: fresh per-image
        generators at the new size, and exactly ``steps`` steps of a ``steps / denoising``-long schedule."""
        first = self._run(sampler, schedule, prompt, negative, seeds, steps, cfg,
                          ImageNoise(seeds, (4, height // 8, width // 8)), None, 0.0, {})
        up = torch.nn.functional.interpolate(first, size=(height * scale // 8, width * scale // 8), mode="bilinear",
                                             antialias=False)
        noise = ImageNoise(seeds, tuple(up.shape[1:]))
        return self.decode(self._run(sampler, schedule, prompt, negative, seeds, steps, cfg, noise, up, denoising, {},
                                     fix_steps=True))

    def _run(self, sampler, schedule, prompt, negative, seeds, steps, cfg, noise: ImageNoise, init, denoising, options,
             fix_steps=False):
        schedule = SCHEDULE_LABELS.get(schedule, schedule)
        c = self.encode(prompt).expand(len(seeds), -1, -1)
        u = self.encode(negative).expand(len(seeds), -1, -1)
        batch = len(seeds)
        x = noise.next()
        t_enc = int(min(denoising, 0.999) * steps) if init is not None else None
        if init is not None and fix_steps:  # A1111's setup_img2img_steps with explicit steps
            steps, t_enc = int(steps / min(denoising, 0.999)), steps - 1
        if sampler in TIMESTEP_SAMPLERS:
            return self._timesteps(sampler, x, c, u, steps, cfg, noise, options, init, t_enc)
        inner = self.lcm_denoiser if sampler == "LCM" else self.denoiser

        def model(x, sigma, **_):
            out = inner(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([c, u]))
            return out[batch:] + (out[:batch] - out[batch:]) * cfg

        sigmas = schedule_sigmas(inner, sampler, schedule, steps)
        if init is not None:
            # A1111 indexes by the step count, also where a schedule has more entries (DDIM type at 11 σ)
            return self._sigma_space(sampler, model, init, x, sigmas, sigmas[steps - t_enc - 1:], steps, seeds, noise)
        # DPM fast/adaptive take only their start σ from the schedule: equal starts give equal runs
        key = (sampler, prompt, negative, tuple(seeds), steps, cfg, tuple(x.shape), sigmas[0].item())
        z = self._runs.get(key) if sampler in ("DPM fast", "DPM adaptive") else None
        if z is None:
            z = self._runs[key] = self._sigma_space(sampler, model, None, x, sigmas, sigmas, steps, seeds, noise)
        return z

    def _sigma_space(self, sampler, model, init, noise0, sigmas, sched, steps, seeds, noise: ImageNoise):
        """``sigmas``: the whole schedule (the Brownian trees span it); ``sched``: the part this pass runs."""
        x = noise0 * sched[0] if init is None else init + noise0 * sched[0]
        if sampler == "Restart":
            return restart(model, x, sched, noise)
        if sampler == "LCM":
            return lcm(model, x, sched, noise)
        fname, fixed = K_FUNCS[sampler]
        fn = getattr(ks, fname)
        params = inspect.signature(fn).parameters
        kwargs = dict(fixed)
        if "sigmas" in params:
            kwargs["sigmas"] = sched
        elif init is None:  # DPM fast / adaptive: the model's σ range (the schedule only sets the start)
            kwargs["sigma_min"], kwargs["sigma_max"] = self.denoiser.sigmas[0].item(), self.denoiser.sigmas[-1].item()
            if "n" in params:
                kwargs["n"] = steps
        else:  # img2img: the pass's own range, its last σ > 0
            kwargs["sigma_min"], kwargs["sigma_max"] = sched[-2].item(), sched[0].item()
            if "n" in params:
                kwargs["n"] = len(sched) - 1
        if "eta" in params:
            kwargs["eta"] = 1.0
        if sampler in BROWNIAN:
            kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(),
                                                                  seed=list(seeds))
        saved = ks.torch
        ks.torch = Hijack(noise)
        try:
            return fn(model, x, extra_args={}, disable=True, **kwargs)
        finally:
            ks.torch = saved

    def _timesteps(self, sampler, x, c, u, steps, cfg, noise, options, init=None, t_enc=None):
        batch = len(x)
        scale = cfg / 12.5 if sampler == "DDIM CFG++" else cfg

        def eps_fn(x, t):
            tt = torch.full((2 * batch,), float(t))
            out = self.eps_model(torch.cat([x, x]), tt, torch.cat([c, u]))
            e_u = out[batch:]
            return e_u + (out[:batch] - e_u) * scale, e_u

        ts = a1111_grid(steps)
        if init is not None:
            a = self.abar[ts[t_enc]]
            x = init * a.sqrt() + x * (1 - a).sqrt()
            ts = ts[:t_enc]
        if sampler == "PLMS":
            return plms(eps_fn, x, self.abar, ts)
        if sampler == "UniPC":
            return unipc(eps_fn, x, self.abar, len(ts), variant=options.get("uni_pc_variant", "bh1"),
                         skip_type=options.get("uni_pc_skip_type", "time_uniform"),
                         order=options.get("uni_pc_order", 3),
                         lower_order_final=options.get("uni_pc_lower_order_final", True),
                         t_start=1.0 if init is None else (ts[-1] / 1000 + 1 / 1000).item())
        return ddim(eps_fn, x, self.abar, ts, noise, eta=0.0, cfgpp=sampler == "DDIM CFG++")

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """One image at a time; clamp((x + 1) / 2) and ``uint8(255·x)`` (truncation), as A1111 does."""
        sf = self.vae.config.scaling_factor
        pics = [self.vae.decode(z[i:i + 1] / sf).sample[0] for i in range(len(z))]
        pics = torch.clamp((torch.stack(pics).float() + 1.0) / 2.0, 0.0, 1.0)
        return (255.0 * np.moveaxis(pics.numpy(), 1, 3)).astype(np.uint8)
