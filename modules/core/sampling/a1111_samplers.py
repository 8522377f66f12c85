"""A1111's own samplers: Restart and LCM (σ space), DDIM, DDIM CFG++, PLMS and UniPC (timestep space).

The timestep samplers run on A1111's grid ``t = range(0, 1000, 1000 // steps) + 1`` and take
``model(x, t_vector) -> ε`` (the guided noise prediction); they loop ``len(timesteps) − 1`` times and end at ᾱ of
the second timestep, as A1111 does. ``noise()`` is the run's per-image stream: DDIM draws from it every step, as
A1111 does even at eta 0.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from modules.core.sampling import schedules
from modules.core.sampling.k_samplers import Callback, Model, Noise, _report, to_d

# --- σ-space samplers ---------------------------------------------------------------------------------------------


def restart(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
            s_noise: float = 1.0) -> torch.Tensor:
    """Restart sampling (Xu et al. 2023) as A1111 configures it: Heun steps; from 20 steps on, the schedule is
    re-made as Karras with fewer steps and a segment around σ≈0.1 is re-noised back up to σ≈2 and re-run
    (once, or twice from 36 steps). Below 20 steps it is Heun."""
    s_in = x.new_ones([x.shape[0]])
    step_id = 0

    def heun_step(x: torch.Tensor, old_sigma: torch.Tensor, new_sigma: torch.Tensor) -> torch.Tensor:
        nonlocal step_id
        denoised = model(x, old_sigma * s_in)
        d = to_d(x, old_sigma, denoised)
        _report(callback, step_id, x, old_sigma, denoised)
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, new_sigma * s_in)
            d_2 = to_d(x_2, new_sigma, denoised_2)
            x = x + (d + d_2) / 2 * dt
        step_id += 1
        return x

    steps = sigmas.shape[0] - 1
    restarts: dict[float, list[int]] = {}
    if steps >= 20:
        restart_steps, restart_times = 9, 1
        if steps >= 36:
            restart_steps, restart_times = steps // 4, 2
        sigmas = schedules.karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restarts = {0.1: [restart_steps + 1, restart_times, 2]}
    at_index = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restarts.items()}

    pairs = []
    for i in range(len(sigmas) - 1):
        pairs.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at_index:
            n_steps, times, top = at_index[i + 1]
            min_idx = i + 1
            max_idx = int(torch.argmin(abs(sigmas - top), dim=0))
            if max_idx < min_idx:
                segment = schedules.karras(n_steps, sigmas[min_idx].item(), sigmas[max_idx].item())[:-1]
                for _ in range(times):
                    pairs.extend(zip(segment[:-1], segment[1:]))

    last_sigma = None
    for old_sigma, new_sigma in pairs:
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + noise(None, None) * s_noise * (old_sigma ** 2 - last_sigma ** 2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x


def restart_denoiser_calls(steps: int) -> int:
    """UNet calls Restart makes for ``steps`` (for progress; Heun's count below 20 steps)."""
    if steps < 20:
        return steps * 2 - 1
    restart_steps, times = (9, 1) if steps < 36 else (steps // 4, 2)
    main = steps - restart_steps * times
    return (main * 2 - 1) + times * (restart_steps - 1) * 2


def lcm(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None) -> torch.Tensor:
    """LCM: jump to the denoised prediction, then re-noise to the next σ with fresh noise."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        _report(callback, i, x, sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise(sigmas[i], sigmas[i + 1])
    return x


# --- timestep samplers ----------------------------------------------------------------------------------------------


def _ddim_coefficients(abar: torch.Tensor, timesteps: torch.Tensor):
    alphas = abar[timesteps]
    alphas_prev = abar[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    return alphas, alphas_prev, torch.sqrt(1 - alphas)


def _ddim_sigmas(eta: float, alphas: torch.Tensor, alphas_prev: torch.Tensor) -> np.ndarray:
    a = alphas.cpu().double().numpy()
    p = alphas_prev.cpu().numpy()
    return eta * np.sqrt((1 - p) / (1 - a) * (1 - a / p))


def ddim(model: Model, x: torch.Tensor, timesteps: torch.Tensor, abar: torch.Tensor, noise: Noise,
         callback: Callback = None, eta: float = 0.0, uncond_eps: Callable[[], torch.Tensor] | None = None
         ) -> torch.Tensor:
    """DDIM; with ``uncond_eps`` (DDIM CFG++) the re-noising direction is the unconditional ε of the last call."""
    alphas, alphas_prev, sqrt_one_minus = _ddim_coefficients(abar, timesteps)
    sigmas = _ddim_sigmas(eta, alphas, alphas_prev)
    s_in = x.new_ones((x.shape[0],))
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t = model(x, timesteps[index].item() * s_in)
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        sigma_t = float(sigmas[index]) * s_x
        pred_x0 = (x - sqrt_one_minus[index].item() * s_x * e_t) / a_t.sqrt()
        direction = uncond_eps() if uncond_eps is not None else e_t
        dir_xt = (1.0 - a_prev - sigma_t ** 2).sqrt() * direction
        step_noise = sigma_t * noise(None, None)
        x = a_prev.sqrt() * pred_x0 + dir_xt + step_noise
        _report(callback, i, x, timesteps[index], pred_x0)
    return x


def plms(model: Model, x: torch.Tensor, timesteps: torch.Tensor, abar: torch.Tensor, noise: Noise,
         callback: Callback = None) -> torch.Tensor:
    """PLMS: pseudo improved Euler for the first step, then Adams-Bashforth of order 2, 3, 4 on ε."""
    alphas, alphas_prev, sqrt_one_minus = _ddim_coefficients(abar, timesteps)
    s_in = x.new_ones((x.shape[0],))
    s_x = x.new_ones((x.shape[0], 1, 1, 1))
    old_eps: list[torch.Tensor] = []

    def x_prev_and_x0(x: torch.Tensor, e_t: torch.Tensor, index: int):
        a_t = alphas[index].item() * s_x
        a_prev = alphas_prev[index].item() * s_x
        pred_x0 = (x - sqrt_one_minus[index].item() * s_x * e_t) / a_t.sqrt()
        return a_prev.sqrt() * pred_x0 + (1.0 - a_prev).sqrt() * e_t, pred_x0

    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        ts = timesteps[index].item() * s_in
        t_next = timesteps[max(index - 1, 0)].item() * s_in
        e_t = model(x, ts)
        if not old_eps:
            x_prev, _ = x_prev_and_x0(x, e_t, index)
            e_t_prime = (e_t + model(x_prev, t_next)) / 2
        elif len(old_eps) == 1:
            e_t_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_t_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_t_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x_prev, pred_x0 = x_prev_and_x0(x, e_t_prime, index)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
        x = x_prev
        _report(callback, i, x, timesteps[index], pred_x0)
    return x


# --- UniPC (Zhao et al. 2023), A1111's settings: bh1, time-uniform, order 3, lower order at the end -----------------


def _interp(x: torch.Tensor, xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear y(x) through (xp, yp), extended linearly beyond both ends (xp ascending)."""
    k = xp.shape[0]
    idx = torch.searchsorted(xp, x.contiguous(), right=False).clamp(1, k - 1) - 1
    x0, x1, y0, y1 = xp[idx], xp[idx + 1], yp[idx], yp[idx + 1]
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


class VPSchedule:
    """The discrete model schedule as a continuous VP process on t ∈ (0, 1]: t_n = (n + 1) / N."""

    def __init__(self, abar: torch.Tensor) -> None:
        self.total_n = len(abar)
        self.t_array = torch.linspace(0.0, 1.0, self.total_n + 1)[1:]
        self.log_alpha = 0.5 * torch.log(abar.cpu())

    def log_mean_coeff(self, t: torch.Tensor) -> torch.Tensor:
        return _interp(t.reshape(-1).cpu(), self.t_array, self.log_alpha).to(t.device)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_mean_coeff(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_mean_coeff(t)))

    def lambda_(self, t: torch.Tensor) -> torch.Tensor:
        lmc = self.log_mean_coeff(t)
        return lmc - 0.5 * torch.log(1.0 - torch.exp(2.0 * lmc))

    def inverse_lambda(self, lamb: torch.Tensor) -> torch.Tensor:
        log_alpha = -0.5 * torch.logaddexp(torch.zeros((1,)), -2.0 * lamb.cpu())
        return _interp(log_alpha.reshape(-1), self.log_alpha.flip(0), self.t_array.flip(0)).to(lamb.device)


def _expand(v: torch.Tensor, dims: int) -> torch.Tensor:
    return v[(...,) + (None,) * (dims - 1)]


def unipc_time_steps(ns: VPSchedule, skip_type: str, t_start: Any, t_end: float, n: int) -> torch.Tensor:
    if skip_type == "time_uniform":
        return torch.linspace(t_start, t_end, n + 1)
    if skip_type == "time_quadratic":
        return torch.linspace(t_start ** 0.5, t_end ** 0.5, n + 1).pow(2)
    if skip_type == "logSNR":
        lam_t = ns.lambda_(torch.tensor(t_start)).item()
        lam_0 = ns.lambda_(torch.tensor(t_end)).item()
        return ns.inverse_lambda(torch.linspace(lam_t, lam_0, n + 1))
    raise ValueError(f"UniPC skip type {skip_type!r}: choose time_uniform, time_quadratic or logSNR")


def _vary_coeff_step(base: torch.Tensor, rks: torch.Tensor, d1s: torch.Tensor | None, hh: torch.Tensor,
                     h_phi_1: torch.Tensor, alpha_t: torch.Tensor, model_prev_0: torch.Tensor, use_corrector: bool,
                     predict: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """UniPC's "vary_coeff" variant (the authors' ``multistep_uni_pc_vary_update``): the residual weights come from
    inverting C[i][k] = r_i^k / (k+1)! (predictor: C without its last row and column) instead of B(h).

    As in the authors' code (and A1111's port), the corrector's last term uses the row of the last loop index
    (row K−2, or row 0 at order 1). A1111's port broadcasts per-image coefficients against the last tensor axis,
    so it only runs with batch size 1; here each image gets its own coefficient, which is the same at batch 1."""
    dims = base.dim()
    k_count = len(rks)
    c = torch.stack([rks ** k / math.factorial(k + 1) for k in range(k_count)], dim=1)
    phis = [h_phi_1]
    factorial = 1
    for k in range(1, k_count + 1):
        phis.append(phis[-1] / hh - 1 / factorial)
        factorial *= k + 1

    def weight(k: int) -> torch.Tensor:
        return _expand(alpha_t * phis[k], dims)

    x_t = base
    if d1s is not None:
        a_p = torch.linalg.inv(c[:-1, :-1])
        for k in range(k_count - 1):
            x_t = x_t - weight(k + 1) * torch.einsum("bkchw,k->bchw", d1s, a_p[k])
    if not use_corrector:
        return x_t, None
    a_c = torch.linalg.inv(c)
    model_t = predict(x_t)
    x_t = base
    last = 0
    for k in range(k_count - 1):
        x_t = x_t - weight(k + 1) * torch.einsum("bkchw,k->bchw", d1s, a_c[k][:-1])
        last = k
    return x_t - weight(k_count) * ((model_t - model_prev_0) * a_c[last][-1]), model_t


def unipc(model: Model, x: torch.Tensor, timesteps: torch.Tensor, abar: torch.Tensor, noise: Noise,
          callback: Callback = None, is_img2img: bool = False, variant: str = "bh1", skip_type: str = "time_uniform",
          order: int = 3, lower_order_final: bool = True) -> torch.Tensor:
    """UniPC multistep with data prediction; ``model`` answers ε at the model time (t − 1/N)·1000.

    ``variant``: bh1 (B(h) = h), bh2 (B(h) = e^h − 1) or vary_coeff (:func:`_vary_coeff_step`)."""
    if variant not in ("bh1", "bh2", "vary_coeff"):
        raise ValueError(f"UniPC variant {variant!r}: choose bh1, bh2 or vary_coeff")
    ns = VPSchedule(abar)
    steps = len(timesteps)
    order = max(1, min(int(order), steps))
    t_0 = 1.0 / ns.total_n
    t_T = timesteps[-1] / 1000 + 1 / 1000 if is_img2img else 1.0
    dims = x.dim()
    index = 0

    def data_pred(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(x, (t - 1.0 / ns.total_n) * 1000.0)
        return (x - _expand(ns.std(t), dims) * eps) / _expand(ns.alpha(t), dims)

    def after_update(x: torch.Tensor, model_x: torch.Tensor) -> None:
        nonlocal index
        _report(callback, index, x, None, model_x)
        index += 1

    def update(x, model_prev, t_prev, t, step_order, use_corrector):
        lam_prev_0, lam_t = ns.lambda_(t_prev[-1]), ns.lambda_(t)
        model_prev_0 = model_prev[-1]
        sigma_prev_0, sigma_t = ns.std(t_prev[-1]), ns.std(t)
        alpha_t = torch.exp(ns.log_mean_coeff(t))
        h = lam_t - lam_prev_0
        rks, d1s = [], []
        for i in range(1, step_order):
            rk = ((ns.lambda_(t_prev[-(i + 1)]) - lam_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev[-(i + 1)] - model_prev_0) / rk)
        rks.append(1.0)
        rks_t = torch.tensor(rks, device=x.device)
        hh = -h[0]
        h_phi_1 = torch.expm1(hh)
        d1_stack = torch.stack(d1s, dim=1) if d1s else None
        x_t_ = _expand(sigma_t / sigma_prev_0, dims) * x - _expand(alpha_t * h_phi_1, dims) * model_prev_0
        if variant == "vary_coeff":
            return _vary_coeff_step(x_t_, rks_t, d1_stack, hh, h_phi_1, alpha_t, model_prev_0, use_corrector,
                                    lambda x_t: data_pred(x_t, t))
        h_phi_k = h_phi_1 / hh - 1
        b_h = hh if variant == "bh1" else torch.expm1(hh)
        factorial = 1
        rows, b = [], []
        for i in range(1, step_order + 1):
            rows.append(torch.pow(rks_t, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        r_mat = torch.stack(rows)
        b_t = torch.tensor(b, device=x.device)
        if d1_stack is not None:
            rhos_p = torch.tensor([0.5], device=x.device) if step_order == 2 else torch.linalg.solve(r_mat[:-1, :-1], b_t[:-1])
        if use_corrector:
            rhos_c = torch.tensor([0.5], device=x.device) if step_order == 1 else torch.linalg.solve(r_mat, b_t)
        pred_res = torch.einsum("k,bkchw->bchw", rhos_p, d1_stack) if d1_stack is not None else 0
        x_t = x_t_ - _expand(alpha_t * b_h, dims) * pred_res
        model_t = None
        if use_corrector:
            model_t = data_pred(x_t, t)
            corr_res = torch.einsum("k,bkchw->bchw", rhos_c[:-1], d1_stack) if d1_stack is not None else 0
            x_t = x_t_ - _expand(alpha_t * b_h, dims) * (corr_res + rhos_c[-1] * (model_t - model_prev_0))
        return x_t, model_t

    ts = unipc_time_steps(ns, skip_type, t_T, t_0, steps).to(x.device)
    vec_t = ts[0].expand(x.shape[0])
    model_prev = [data_pred(x, vec_t)]
    t_prev = [vec_t]
    for init_order in range(1, order):
        vec_t = ts[init_order].expand(x.shape[0])
        x, model_x = update(x, model_prev, t_prev, vec_t, init_order, True)
        if model_x is None:
            model_x = data_pred(x, vec_t)
        after_update(x, model_x)
        model_prev.append(model_x)
        t_prev.append(vec_t)
    for step in range(order, steps + 1):
        vec_t = ts[step].expand(x.shape[0])
        step_order = min(order, steps + 1 - step) if lower_order_final else order
        x, model_x = update(x, model_prev, t_prev, vec_t, step_order, step != steps)
        after_update(x, model_x if model_x is not None else model_prev[-1])
        for i in range(order - 1):
            t_prev[i] = t_prev[i + 1]
            model_prev[i] = model_prev[i + 1]
        t_prev[-1] = vec_t
        if step < steps:
            if model_x is None:
                model_x = data_pred(x, vec_t)
            model_prev[-1] = model_x
    return x
