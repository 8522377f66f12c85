"""Checking and applying settings from outside (POST /sdapi/v1/options, a request's override_settings).

FastAPI-free, so that the settings page can apply its changes the same way. Every problem is a
RequestError naming the setting: a client never gets a 500 for a bad key or value.
"""
from __future__ import annotations

from typing import Any, Mapping

from modules.core.request import RequestError
from modules.settings import output_paths
from modules.settings.options import check_value

# A1111's `restrict_api` options: the API silently leaves them alone.
API_RESTRICTED = frozenset({"api_enable_requests", "api_forbid_local_requests", "api_useragent"})
MODEL_KEYS = ("sd_model_checkpoint", "sd_vae")


def exact_checkpoint(engine: Any, name: str) -> Any:
    """The checkpoint one of whose exact aliases is ``name`` (A1111's ``checkpoint_aliases``), or None."""
    for info in engine.available_checkpoints():
        if name in info.ids or name == info.hash:
            return info
    return None


def closest_checkpoint(engine: Any, name: str) -> Any:
    """A1111's ``get_closet_checkpoint_match`` over the listed checkpoints (the built-in one when none is listed)."""
    info = engine.checkpoints.get_closest(name)
    if info is None and not engine.checkpoints.list():
        info = exact_checkpoint(engine, name)
    return info


def _checkpoint_choices(engine: Any) -> str:
    return ", ".join(c.title for c in engine.available_checkpoints())


def check_setting(engine: Any, key: str, value: Any, *, field: str, exact_checkpoint_name: bool) -> Any:
    """``value`` converted for setting ``key``; RequestError(field, why) if it is not acceptable."""
    try:
        info = engine.options.info(key)
    except ValueError:
        raise RequestError(field, f"unknown setting {key!r}") from None
    if key == "sd_model_checkpoint" and value is not None:
        if not isinstance(value, str) or not value.strip():
            raise RequestError(field, f"expected a checkpoint name, got {value!r}")
        found = (exact_checkpoint if exact_checkpoint_name else closest_checkpoint)(engine, value)
        if found is None:
            raise RequestError(field, f"model {value!r} not found; available: {_checkpoint_choices(engine)}")
        value = found.title
    elif key == "sd_vae":
        choices = engine.vaes.choices()
        if value not in choices:
            raise RequestError(field, f"unknown VAE {value!r}; choose one of {', '.join(map(str, choices))}")
    elif key in ("sd_hypernetwork", "sd_lora") and isinstance(value, str) and _names_a_path(value):
        raise RequestError(field, f"{value!r} is a path; name a network from the list (or None)")
    try:
        value = check_value(info, value)
    except ValueError as exc:
        raise RequestError(field, str(exc)) from None
    try:
        output_paths.check_output_setting(key, value, engine.paths, getattr(engine, "args", None))
    except output_paths.OutputPathRefused as exc:
        raise RequestError(field, exc.message) from None
    return value


def _names_a_path(value: str) -> bool:
    return any(c in value for c in "/\\\x00") or value.strip() in (".", "..")


def _ignored_from_api(engine: Any, key: str) -> bool:
    """Settings A1111's API leaves alone: its ``restrict_api`` ones, and folders with ``--hide-ui-dir-config``
    (checked before the value, which is then never looked at; an unknown key is not ignored)."""
    if key in API_RESTRICTED:
        return True
    if not getattr(engine.args, "hide_ui_dir_config", False):
        return False
    try:
        return engine.options.info(key).restricted
    except ValueError:
        return False


def check_overrides(engine: Any, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's ``override_settings``, checked and converted (field names ``override_settings.<key>``)."""
    out: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if _ignored_from_api(engine, key):
            continue
        out[key] = check_setting(engine, key, value, field=f"override_settings.{key}", exact_checkpoint_name=False)
    return out


def _split(text: str | None) -> set[str]:
    return {part.strip() for part in (text or "").split(",") if part.strip()}


def _frozen_reason(engine: Any, key: str) -> str | None:
    args = engine.args
    if getattr(args, "freeze_settings", False):
        return "settings are frozen (--freeze-settings)"
    if key in _split(getattr(args, "freeze_specific_settings", None)):
        return "this setting is frozen (--freeze-specific-settings)"
    sections = _split(getattr(args, "freeze_settings_in_sections", None))
    if sections and engine.options.info(key).section[0] in sections:
        return "its section is frozen (--freeze-settings-in-sections)"
    return None


def apply_options(engine: Any, values: Mapping[str, Any], *, from_api: bool = True) -> list[str]:
    """Set several settings at once, like A1111's POST /sdapi/v1/options; returns the keys that changed.

    All values are checked before any is set (one bad key changes nothing). ``sd_model_checkpoint`` must be
    an exact checkpoint alias (title, name, hash...). A new checkpoint or VAE is loaded before returning,
    waiting for the running generation; when loading fails the previous values come back and the error
    propagates. The settings file is saved.
    """
    opts = engine.options
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if from_api and _ignored_from_api(engine, key):
            continue
        value = check_setting(engine, key, value, field=key, exact_checkpoint_name=True)
        if opts.get(key) == value:
            continue
        reason = _frozen_reason(engine, key)
        if reason:
            raise RequestError(key, reason)
        checked[key] = value

    previous = {key: opts.get(key) for key in checked}
    changed = [key for key, value in checked.items() if opts.set(key, value)]
    if changed and opts.path is not None:
        try:  # first the file: on a full disk nothing is applied, and memory and disk agree
            opts.save()
        except OSError:
            _restore(opts, previous, changed)
            raise
    if any(key in changed for key in MODEL_KEYS):
        try:
            with engine.state.queue.hold():
                engine.ensure_model()
        except Exception:
            for key in MODEL_KEYS:
                if key in previous:
                    opts.set(key, previous[key], run_callbacks=False)
            if opts.path is not None:
                opts.save()
            raise
    return changed


def _restore(opts: Any, previous: Mapping[str, Any], keys: list[str]) -> None:
    for key in keys:
        opts.set(key, previous[key], run_callbacks=key not in MODEL_KEYS)


def options_for_api(engine: Any) -> dict[str, Any]:
    """Every setting (GET /sdapi/v1/options); ``sd_checkpoint_hash`` tells the loaded checkpoint's sha256."""
    data = engine.options.data()
    info = engine.checkpoint_info
    if info is not None and info.sha256 and not data.get("sd_checkpoint_hash"):
        data["sd_checkpoint_hash"] = info.sha256
    return data

