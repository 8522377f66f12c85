"""The k-diffusion samplers A1111 offers, one function each, in σ space.

Each takes ``model(x, sigma_vector) -> denoised``, the start latent ``x`` (noise · σ_max for txt2img), the σ
schedule and ``noise(σ, σ') -> Tensor`` (the run's per-image stream, or a Brownian tree for the SDE samplers),
and returns the final latent. ``callback({'i', 'x', 'sigma', 'denoised'})`` runs once per step. The step formulas
are Katherine Crowson's (k-diffusion, MIT); A1111 runs them with eta 1, s_noise 1 and no churn by default.
Euler, Heun and DPM2 draw one noise tensor per step even without churn, as k-diffusion does, so that the
stream stays where A1111's is.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Noise = Callable[[Any, Any], torch.Tensor]
Callback = Callable[[dict], None] | None


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The Karras ODE derivative dx/dσ."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0) -> tuple[Any, Any]:
    """(σ_down, σ_up): where the deterministic step lands and how much fresh noise brings it back to σ_to."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def _report(callback: Callback, i: int, x: torch.Tensor, sigma: Any, denoised: torch.Tensor) -> None:
    if callback is not None:
        callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})


def _churn(sigmas: torch.Tensor, i: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    return min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1) if s_tmin <= sigmas[i] <= s_tmax else 0.0


def _churned(x: torch.Tensor, sigmas: torch.Tensor, i: int, noise: Noise, s_churn: float, s_tmin: float,
             s_tmax: float, s_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Step i's churn (Euler, Heun, DPM2): ``(x raised to sigma_hat, sigma_hat)``. The noise is drawn every step,
    churn or not, as k-diffusion does, so the noise stream stays aligned."""
    gamma = _churn(sigmas, i, s_churn, s_tmin, s_tmax)
    eps = noise(sigmas[i], sigmas[i + 1]) * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def euler(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
          s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, i, x, sigmas[i], denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def euler_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
                    eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, i, x, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def heun(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
         s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, i, x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1] * s_in)
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


def dpm_2(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
          s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            denoised_2 = model(x_2, sigma_mid * s_in)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def dpm_2_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
                    eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, i, x, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = model(x_2, sigma_mid * s_in)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def _lms_coeff(order: int, t: Any, i: int, j: int) -> float:
    from scipy import integrate

    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


def lms(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
        order: int = 4) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    sigmas_np = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        _report(callback, i, x, sigmas[i], denoised)
        cur = min(i + 1, order)
        coeffs = [_lms_coeff(cur, sigmas_np, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


def dpmpp_2s_ancestral(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
                       eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        _report(callback, i, x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = sigmas[i].log().neg(), sigma_down.log().neg()
            h = t_next - t
            s = t + h / 2
            x_2 = (s.neg().exp() / t.neg().exp()) * x - (-h * 0.5).expm1() * denoised
            denoised_2 = model(x_2, s.neg().exp() * s_in)
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def dpmpp_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
              eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])

    def sigma_of(t: torch.Tensor) -> torch.Tensor:
        return t.neg().exp()

    def t_of(sigma: Any) -> torch.Tensor:
        return sigma.log().neg()

    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        _report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = t_of(sigmas[i]), t_of(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sd, su = ancestral_step(sigma_of(t), sigma_of(s), eta)
        s_ = t_of(sd)
        x_2 = (sigma_of(s_) / sigma_of(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise(sigma_of(t), sigma_of(s)) * s_noise * su
        denoised_2 = model(x_2, sigma_of(s) * s_in)
        sd, su = ancestral_step(sigma_of(t), sigma_of(t_next), eta)
        t_next_ = t_of(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sigma_of(t_next_) / sigma_of(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise(sigma_of(t), sigma_of(t_next)) * s_noise * su
    return x


def dpmpp_2m(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        _report(callback, i, x, sigmas[i], denoised)
        t, t_next = sigmas[i].log().neg(), sigmas[i + 1].log().neg()
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised
        else:
            h_last = t - sigmas[i - 1].log().neg()
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (t_next.neg().exp() / t.neg().exp()) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def dpmpp_2m_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
                 eta: float = 1.0, s_noise: float = 1.0, solver_type: str = "midpoint") -> torch.Tensor:
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    h_last = None
    h = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        _report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


def dpmpp_3m_sde(model: Model, x: torch.Tensor, sigmas: torch.Tensor, noise: Noise, callback: Callback = None,
                 eta: float = 1.0, s_noise: float = 1.0) -> torch.Tensor:
    s_in = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        _report(callback, i, x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * ((denoised - denoised_1) / r)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x
