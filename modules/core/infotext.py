"""A1111 infotext ("generation parameters"): writing and parsing, as AUTOMATIC1111 v1.10.1 does (spec §6).

Layout::

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>      (omitted when empty)
    Key: value, Key: value, ...                              (one line)

Writing: :func:`build_generation_params` orders the keys like A1111's ``create_infotext`` dict literal,
:func:`create_infotext` joins them. Parsing: :func:`parse_generation_parameters` mirrors
``infotext_utils.parse_generation_parameters`` including its defaults and back-compat rules; parsed values stay
strings, the defaults keep A1111's types (``0``, ``32``, ``False``).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from modules.core import styles as styles_mod
from modules.core.styles import PromptStyle

__all__ = [
    "INFOTEXT_KEY_ORDER",
    "find_params",
    "quote",
    "unquote",
    "build_generation_params",
    "create_infotext",
    "parse_generation_parameters",
    "InfotextVersion",
    "parse_version",
    "version_less_than",
    "uses_emphasis",
]

# create_infotext's dict literal (v1.10.1); extra params go between "Tiling" and "Version".
INFOTEXT_KEY_ORDER: tuple[str, ...] = (
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "Tiling",
    "Version",
    "User",
)
_TRAILING_KEYS = ("Version", "User")
_LEADING_KEYS = tuple(k for k in INFOTEXT_KEY_ORDER if k not in _TRAILING_KEYS)

# A1111's pattern, kept for extensions that import it. Its ``findall`` backtracks quadratically on a long
# line without ":" (40 kB: 22 s), so this module parses with :func:`find_params`, which returns the same pairs
# in linear time.
re_param_code = r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)'
re_param = re.compile(re_param_code)
re_imagesize = re.compile(r"^(\d+)x(\d+)$")

_re_spaces = re.compile(r"\s*")
_re_word = re.compile(r"\w")
_re_key_run = re.compile(r"[\w \-/]*")
# After "key:": no backtracking here is ever more than linear (the second branch always matches).
_re_value = re.compile(r'\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def find_params(line: str) -> list[tuple[str, str]]:
    """``re_param.findall(line)`` in linear time: the ``(key, raw value)`` pairs of a parameter line.

    Where the regex engine would retry at every position of a long run of key characters that is not followed
    by ":" (each retry scanning to the run's end), this skips the run: every start inside it fails the same way.
    Only a run's trailing spaces are retried, because from there ``\s*`` can reach past the run.
    """
    found: list[tuple[str, str]] = []
    pos, n = 0, len(line)
    while pos < n:
        start = _re_spaces.match(line, pos).end()
        if start >= n:
            break
        if not _re_word.match(line, start):
            pos = start + 1
            continue
        end = _re_key_run.match(line, start).end()
        if end - start >= 2 and end < n and line[end] == ":":
            m = _re_value.match(line, end + 1)
            found.append((line[start:end], m.group(1)))
            pos = m.end()
            continue
        retry = end
        while retry > start and line[retry - 1] == " ":
            retry -= 1
        pos = retry if retry < end else end
    return found


# ------------------------------------------------------------------------------------------------ writing


def quote(value: Any) -> Any:
    """A1111's ``quote``: JSON-quote a value whose text has ``,``, newline or ``:``; else return it unchanged."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return value
    return json.dumps(value, ensure_ascii=False)


def unquote(text: str) -> str:
    """A1111's ``unquote``: ``json.loads`` a double-quoted value, falling back to the raw text."""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def build_generation_params(fields: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ordered ``Key -> value`` dict of an infotext, following ``create_infotext``.

    ``fields`` holds the fixed keys of :data:`INFOTEXT_KEY_ORDER` (``Steps``, ``Sampler``, ..., ``Version``,
    ``User``); ``extra`` is ``p.extra_generation_params`` (``Hires upscale``, ``Lora hashes``, ``TI hashes``,
    ``Emphasis``, ...). Known keys come in their fixed order, then keys of ``fields`` not in the table, then
    ``extra`` in its order — where ``extra`` repeats a known key (``Schedule type``, ``Denoising strength``) the key
    keeps its fixed position and takes the new value — then ``Version`` and ``User``. ``None`` values are dropped.
    """
    extra = dict(extra or {})
    params: dict[str, Any] = {k: fields.get(k) for k in _LEADING_KEYS}
    for key, value in fields.items():
        if key not in params and key not in _TRAILING_KEYS:
            params[key] = value
    for key, value in extra.items():
        if key not in _TRAILING_KEYS:
            params[key] = value
    for key in _TRAILING_KEYS:
        value = fields.get(key)
        params[key] = value if value is not None else extra.get(key)
    return {k: v for k, v in params.items() if v is not None}


def create_infotext(prompt: str, negative_prompt: str | None, params: Mapping[str, Any]) -> str:
    """``prompt``, ``Negative prompt: ...`` (if any) and the ``Key: value`` line, like A1111's ``create_infotext``.

    A value equal to its key is written bare (``Mask mode: Inpaint not masked``-style flags); ``None`` is skipped.
    """
    params_text = ", ".join(
        k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None
    )
    negative_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt or ''}{negative_text}\n{params_text}".strip()


# ------------------------------------------------------------------------------------------------ versions


@dataclass(frozen=True, order=True)
class InfotextVersion:
    """A comparable ``git describe`` version (``v1.9.4-191-g6ca0466e`` → release (1, 9, 4), 191 commits after)."""

    release: tuple[int, int, int, int]
    final: int  # 0 for a pre-release (rc, alpha, beta, pre), 1 for a release
    pre: tuple[str, int]
    post: int

    def __str__(self) -> str:  # pragma: no cover - debugging aid
        release = list(self.release)
        while len(release) > 3 and release[-1] == 0:
            release.pop()
        text = ".".join(str(p) for p in release)
        if not self.final:
            text += f"{self.pre[0]}{self.pre[1]}"
        return f"{text}+{self.post}" if self.post else text


_re_version = re.compile(
    r"^v?(\d+(?:\.\d+){0,3})"
    r"(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d*))?"
    r"(?:-(\d+))?$",
    re.IGNORECASE,
)
_PRE_RANK = MappingProxyType(
    {"a": "a", "alpha": "a", "b": "b", "beta": "b", "c": "rc", "rc": "rc", "pre": "rc", "preview": "rc"})


def parse_version(text: str | None) -> InfotextVersion | None:
    """Parse an infotext ``Version`` like A1111's ``infotext_versions.parse_version``.

    Like A1111, only the first two ``-`` separated parts count (``v1.9.4-191-g6ca0466e`` → ``v1.9.4-191``:
    release 1.9.4, 191 commits after it; ``v1.6.0-RC-28-g...`` → 1.6.0 release candidate). Unparseable text
    (``neo``, Forge's ``f0.0.17v1.8.0rc-latest-...``) gives ``None``.
    """
    if not text:
        return None
    text = str(text).strip()
    m = re.match(r"([^-]+-[^-]+)-.*", text)
    if m:
        text = m.group(1)
    m = _re_version.match(text)
    if m is None:
        return None
    parts = [int(p) for p in m.group(1).split(".")]
    release = tuple((parts + [0, 0, 0, 0])[:4])
    pre_kind = m.group(2)
    pre = (_PRE_RANK[pre_kind.lower()], int(m.group(3) or 0)) if pre_kind else ("", 0)
    post = int(m.group(4) or 0)
    return InfotextVersion(release, 0 if pre_kind else 1, pre, post)  # type: ignore[arg-type]


def version_less_than(version: str | InfotextVersion | None, other: str | InfotextVersion) -> bool:
    """``version < other``; ``False`` when ``version`` cannot be parsed (A1111 then applies no back-compat)."""
    a = version if isinstance(version, InfotextVersion) else parse_version(version)
    b = other if isinstance(other, InfotextVersion) else parse_version(other)
    if a is None or b is None:
        return False
    return a < b


V160 = parse_version("1.6.0")
V170_TSNR = parse_version("v1.7.0-225")
V180 = parse_version("1.8.0")
V180_HR_STYLES = parse_version("1.8.0-139")


def _backcompat(d: dict[str, Any]) -> None:
    """``infotext_versions.backcompat`` (setting ``auto_backcompat``, default on)."""
    ver = parse_version(d.get("Version"))
    if ver is None:
        return
    if ver < V160 and "[" in d.get("Prompt", ""):
        d["Old prompt editing timelines"] = True
    if ver < V160 and d.get("Sampler", "") in ("DDIM", "PLMS"):
        d["Pad conds v0"] = True
    if ver < V170_TSNR:
        d["Downcast alphas_cumprod"] = True
    if ver < V180 and d.get("Refiner"):
        d["Refiner switch by sampling steps"] = True


# ------------------------------------------------------------------------------------------------ emphasis


MAX_EMPHASIS_CHECK_DEPTH = 100


def uses_emphasis(*prompts: str) -> bool:
    """True when any prompt has a run weighted other than 1.0 (A1111's ``prompt_uses_emphasis``)."""
    from modules.core.prompt_parser import parse_prompt_attention
    from modules.core.request_bounds import nesting_depth

    # Weighing runs costs (length x brackets open at once); an infotext from anywhere (png-info) may nest
    # thousands deep. That deep, the prompt uses emphasis syntax, and generating it would be refused anyway.
    if any(nesting_depth(p or "") > MAX_EMPHASIS_CHECK_DEPTH for p in prompts):
        return True
    runs = [r for p in prompts for r in parse_prompt_attention(p or "")]
    return len(runs) != len([r for r in runs if r[1] == 1.0 or r[0] == "BREAK"])


# ------------------------------------------------------------------------------------------------ styles


def _normalize_styles(styles: Any) -> list[PromptStyle]:
    """Accept a mapping name→style or an iterable of styles; a style is an object with ``name``/``prompt``/
    ``negative_prompt`` attributes, a dict with those keys, or a ``(name, prompt, negative_prompt)`` tuple."""
    if styles is None:
        return []
    items: Iterable[Any]
    if isinstance(styles, Mapping):
        items = []
        for key, value in styles.items():
            if isinstance(value, (tuple, list)) and len(value) == 2:
                items.append((key, value[0], value[1]))
            else:
                items.append(value)
    else:
        items = styles
    out = []
    for st in items:
        if isinstance(st, (tuple, list)):
            name, prompt, negative = (list(st) + ["", "", ""])[:3]
        elif isinstance(st, Mapping):
            name, prompt, negative = st.get("name", ""), st.get("prompt", ""), st.get("negative_prompt", "")
        else:
            name = getattr(st, "name", "")
            prompt = getattr(st, "prompt", "")
            negative = getattr(st, "negative_prompt", "")
        out.append(PromptStyle(str(name), str(prompt or ""), str(negative or "")))
    return out


def extract_styles_from_prompt(styles: Any, prompt: str, negative_prompt: str) -> tuple[list[str], str, str]:
    """Peel saved styles off the end of the prompts, as the style database does (one implementation:
    :func:`modules.core.styles.extract_styles_from_prompt`), for styles given in any of the shapes above."""
    return styles_mod.extract_styles_from_prompt(_normalize_styles(styles), prompt, negative_prompt)


# ------------------------------------------------------------------------------------------------ parsing


def _old_hires_fix_first_pass_dimensions(width: int, height: int) -> tuple[int, int]:
    desired_pixel_count = 512 * 512
    actual_pixel_count = width * height
    scale = math.sqrt(desired_pixel_count / actual_pixel_count)
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def _restore_old_hires_fix_params(res: dict[str, Any]) -> None:
    """Infotexts with the old ``First pass size`` → ``Size`` (first pass) + ``Hires resize`` (final size)."""
    firstpass_width = res.get("First pass size-1")
    firstpass_height = res.get("First pass size-2")
    if firstpass_width is None or firstpass_height is None:
        return
    firstpass_width, firstpass_height = int(firstpass_width), int(firstpass_height)
    width = int(res.get("Size-1", 512))
    height = int(res.get("Size-2", 512))
    if firstpass_width == 0 or firstpass_height == 0:
        firstpass_width, firstpass_height = _old_hires_fix_first_pass_dimensions(width, height)
    res["Size-1"] = firstpass_width
    res["Size-2"] = firstpass_height
    res["Hires resize-1"] = width
    res["Hires resize-2"] = height


def _split_combined_sampler(res: dict[str, Any]) -> None:
    """Old combined sampler names (``DPM++ 2M Karras``) → ``Sampler`` + ``Schedule type``."""
    from modules.core import samplers

    name = res.get("Sampler")
    if not isinstance(name, str) or samplers.find_sampler(name) is not None:
        return
    split = samplers.split_combined_name(name)
    if split is None:
        return
    sampler, schedule = split
    res["Sampler"] = sampler.name
    if res.get("Schedule type") in (None, "", "Automatic"):
        res["Schedule type"] = schedule.label


def parse_generation_parameters(
    text: str,
    skip_fields: Iterable[str] | None = None,
    *,
    styles: Any = None,
) -> dict[str, Any]:
    """Parse an infotext into a dict of fields, like A1111's ``parse_generation_parameters``.

    * The last line holds the parameters only if ``re_param`` finds at least 3 ``key: value`` pairs in it;
      otherwise it is prompt text. Lines before are prompt lines until one starts with ``Negative prompt:``,
      negative-prompt lines after; each line is stripped and lines are joined with ``\\n``.
    * ``"..."`` values are ``json.loads``-ed; ``WxH`` values give ``key-1``/``key-2``; empty values are dropped
      (A1111 errors on them and skips them). Parsed values stay strings.
    * ``Prompt``, ``Negative prompt`` and A1111's defaults for absent keys are added; ``Emphasis: Original`` when the
      prompts use emphasis; ``Hypernet`` becomes a ``<hypernet:name:strength>`` prompt tag; ``First pass size`` is
      converted; the ``Version`` back-compat flags are set; old combined sampler names are split into ``Sampler``
      and ``Schedule type``.
    * ``styles``: saved styles (see :func:`extract_styles_from_prompt`); when given, matching style text is removed
      from the prompts and ``Styles array`` lists the styles found (A1111's default "Apply if any").
    * ``skip_fields`` are removed at the end (A1111's ``infotext_skip_pasting``).
    """
    res: dict[str, Any] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = (text or "").strip().split("\n")
    if len(find_params(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    for k, v in find_params(lastline):
        if not v:
            continue  # A1111: v[0] raises IndexError, the key is reported and skipped
        if v[0] == '"' and v[-1] == '"':
            v = unquote(v)
        m = re_imagesize.match(v)
        if m is not None:
            res[f"{k}-1"] = m.group(1)
            res[f"{k}-2"] = m.group(2)
        else:
            res[k] = v

    if styles is not None:
        found_styles, prompt_no_styles, negative_no_styles = extract_styles_from_prompt(
            styles, prompt, negative_prompt)
        same_hr_styles = True
        infotext_ver = parse_version(res.get("Version"))
        if ("Hires prompt" in res or "Hires negative prompt" in res) and (
            infotext_ver > V180_HR_STYLES if infotext_ver else True
        ):
            hr_prompt = res.get("Hires prompt", prompt)
            hr_negative = res.get("Hires negative prompt", negative_prompt)
            hr_found, hr_prompt_no_styles, hr_negative_no_styles = extract_styles_from_prompt(
                styles, hr_prompt, hr_negative)
            same_hr_styles = found_styles == hr_found
            if same_hr_styles:
                res["Hires prompt"] = "" if hr_prompt_no_styles == prompt_no_styles else hr_prompt_no_styles
                res["Hires negative prompt"] = (
                    "" if hr_negative_no_styles == negative_no_styles else hr_negative_no_styles)
        if same_hr_styles:
            prompt, negative_prompt = prompt_no_styles, negative_no_styles
            if found_styles:
                res["Styles array"] = found_styles

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    if "Clip skip" not in res:
        res["Clip skip"] = "1"

    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] += f"""<hypernet:{hypernet}:{res.get("Hypernet strength", "1.0")}>"""

    if "Hires resize-1" not in res:
        res["Hires resize-1"] = 0
        res["Hires resize-2"] = 0
    res.setdefault("Hires sampler", "Use same sampler")
    res.setdefault("Hires schedule type", "Use same scheduler")
    res.setdefault("Hires checkpoint", "Use same checkpoint")
    res.setdefault("Hires prompt", "")
    res.setdefault("Hires negative prompt", "")
    res.setdefault("Mask mode", "Inpaint masked")
    res.setdefault("Masked content", "original")
    res.setdefault("Inpaint area", "Whole picture")
    res.setdefault("Masked area padding", 32)

    _restore_old_hires_fix_params(res)

    res.setdefault("RNG", "GPU")
    res.setdefault("Schedule type", "Automatic")
    res.setdefault("Schedule max sigma", 0)
    res.setdefault("Schedule min sigma", 0)
    res.setdefault("Schedule rho", 0)
    res.setdefault("VAE Encoder", "Full")
    res.setdefault("VAE Decoder", "Full")
    res.setdefault("FP8 weight", "Disable")
    if "Cache FP16 weight for LoRA" not in res and res["FP8 weight"] != "Disable":
        res["Cache FP16 weight for LoRA"] = False

    if "Emphasis" not in res and uses_emphasis(prompt, negative_prompt):
        res["Emphasis"] = "Original"

    res.setdefault("Refiner switch by sampling steps", False)

    _split_combined_sampler(res)
    _backcompat(res)

    for key in skip_fields or ():
        res.pop(key, None)

    return res
