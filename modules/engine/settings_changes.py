"""Checking setting changes that come from outside: the API's POST /sdapi/v1/options, the settings page and
quicksettings, a request's override_settings, the checkpoint cards.

Both doors check here and then apply through :meth:`Engine.apply_settings`, so they give the same errors and a
change always waits for the running job. Every problem is a RequestError naming the setting: a client never
gets a 500 for a bad key or value.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from modules.core.request import RequestError
from modules.settings import output_paths
from modules.engine.engine import MODEL_KEYS
from modules.settings.options import check_value

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.models.checkpoints import CheckpointInfo

# A1111's `restrict_api` options: the API silently leaves them alone.
API_RESTRICTED = frozenset({"api_enable_requests", "api_forbid_local_requests", "api_useragent"})
__all__ = ["API_RESTRICTED", "MODEL_KEYS", "apply_options", "check_overrides", "check_setting", "closest_checkpoint",
           "check_change", "exact_checkpoint", "frozen_reason"]


def exact_checkpoint(engine: "Engine", name: str) -> "CheckpointInfo | None":
    """The checkpoint one of whose exact aliases is ``name`` (A1111's ``checkpoint_aliases``), or None."""
    for info in engine.available_checkpoints():
        if name in info.ids or name == info.hash:
            return info
    return None


def closest_checkpoint(engine: "Engine", name: str) -> "CheckpointInfo | None":
    """A1111's ``get_closet_checkpoint_match`` over the listed checkpoints (the built-in one when none is listed)."""
    info = engine.checkpoints.get_closest(name)
    if info is None and not engine.checkpoints.list():
        info = exact_checkpoint(engine, name)
    return info


def _checkpoint_choices(engine: "Engine") -> str:
    return ", ".join(c.title for c in engine.available_checkpoints())


def check_setting(engine: "Engine", key: str, value: Any, *, field: str, exact_checkpoint_name: bool) -> Any:
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
    paths = getattr(engine, "paths", None)
    if paths is not None and value != engine.options.get(key):  # a value already set (or a page's untouched
        try:                                                   # control) is checked where images are saved
            output_paths.check_output_setting(key, value, paths)
        except output_paths.OutputPathRefused as exc:
            raise RequestError(field, exc.message) from None
    return value


def _names_a_path(value: str) -> bool:
    return any(c in value for c in "/\\\x00") or value.strip() in (".", "..")


def _ignored_from_api(engine: "Engine", key: str) -> bool:
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


def check_overrides(engine: "Engine", overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's ``override_settings``, checked and converted (field names ``override_settings.<key>``)."""
    out: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if _ignored_from_api(engine, key):
            continue
        out[key] = check_setting(engine, key, value, field=f"override_settings.{key}", exact_checkpoint_name=False)
    return out


def _split(text: str | None) -> set[str]:
    return {part.strip() for part in (text or "").split(",") if part.strip()}


def frozen_reason(engine: "Engine", key: str) -> str | None:
    """Why ``key`` may not be changed (the --freeze-settings flags), or None."""
    args = engine.args
    if getattr(args, "freeze_settings", False):
        return "settings are frozen (--freeze-settings)"
    if key in _split(getattr(args, "freeze_specific_settings", None)):
        return "this setting is frozen (--freeze-specific-settings)"
    sections = _split(getattr(args, "freeze_settings_in_sections", None))
    if sections and engine.options.info(key).section[0] in sections:
        return "its section is frozen (--freeze-settings-in-sections)"
    return None


def check_change(engine: "Engine", key: str, value: Any, *, exact_checkpoint_name: bool) -> Any:
    """:func:`check_setting` for a value that differs from the current one, refused also while the setting is frozen
    (``--freeze-settings`` and the like); what the page's Settings tab and extensions' ``opts`` writes use."""
    value = check_setting(engine, key, value, field=key, exact_checkpoint_name=exact_checkpoint_name)
    reason = frozen_reason(engine, key)
    if reason:
        raise RequestError(key, reason)
    return value


def apply_options(engine: "Engine", values: Mapping[str, Any], *, from_api: bool = True) -> list[str]:
    """Set several settings at once, like A1111's POST /sdapi/v1/options; returns the keys that changed.

    All values are checked before any is set (one bad key changes nothing). ``sd_model_checkpoint`` must be
    an exact checkpoint alias (title, name, hash...). The change goes through :meth:`Engine.apply_settings`:
    it waits for the running generation, a new checkpoint or VAE is loaded before returning, a model that
    fails to load leaves model and settings as they were (the error propagates), and the file is saved.
    """
    opts = engine.options
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if from_api and _ignored_from_api(engine, key):
            continue
        value = check_setting(engine, key, value, field=key, exact_checkpoint_name=True)
        if opts.get(key) == value:
            continue
        reason = frozen_reason(engine, key)
        if reason:
            raise RequestError(key, reason)
        checked[key] = value
    return engine.apply_settings(checked) if checked else []
