"""Launch flags, compatible with AUTOMATIC1111's ``modules/cmd_args.py`` (spec §8).

Every A1111 flag parses with the same name, dest, kind and default, so existing
``webui-user.sh`` files and ``COMMANDLINE_ARGS`` keep working. Flags that mean nothing
in this app still parse; their help text says why, and :func:`validate_args` warns when
one is given; flags that work differently here say how in their help (``NOTES``). Flags
that cannot work here at all (``--share``, ``--ngrok``) stop the program with an explanation.
:func:`extension_install_allowed` and :func:`cuda_check_message` are the start-up decisions
that depend on flags alone.

Nothing here is global: :func:`parse_args` returns a fresh ``argparse.Namespace``.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from modules.core.request_bounds import FLAG_HELP as BOUND_HELP, RequestBounds

REPO_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)

# Extension preload hooks: ``preload(parser)`` adds arguments before parsing.
PreloadHook = Callable[[argparse.ArgumentParser], None]

_OFFLINE = "this app works offline and never downloads anything"
_XFORMERS = "xformers is not used; attention runs on PyTorch scaled-dot-product attention (SDPA)"
_ATTN = "attention always runs on PyTorch SDPA; A1111's alternative attention kernels do not exist here"
_NOOP = "does nothing in A1111 either"
_FACE = "face restoration (GFPGAN/CodeFormer) is not part of this app"

# dest -> why the flag has no effect in this app (appended to its help, warned about by validate_args).
NO_EFFECT: Mapping[str, str] = {
    "update_all_extensions": _OFFLINE,
    "update_check": _OFFLINE,
    "do_not_download_clip": _OFFLINE,
    "no_download_sd_model": _OFFLINE,
    "reinstall_xformers": _XFORMERS,
    "opt_split_attention": _ATTN,
    "opt_sub_quad_attention": _ATTN,
    "sub_quad_q_chunk_size": _ATTN,
    "sub_quad_kv_chunk_size": _ATTN,
    "sub_quad_chunk_threshold": _ATTN,
    "opt_split_attention_invokeai": _ATTN,
    "opt_split_attention_v1": _ATTN,
    "gfpgan_dir": _FACE,
    "gfpgan_model": _FACE,
    "codeformer_models_path": _FACE,
    "gfpgan_models_path": _FACE,
    "unload_gfpgan": _NOOP,
    "max_batch_count": _NOOP,
    "always_batch_cond_uncond": _NOOP,
    "ngrok_region": _NOOP,
    "deepdanbooru": _NOOP,
    "show_negative_prompt": _NOOP,
    "gradio_img2img_tool": _NOOP,
    "gradio_inpaint_tool": _NOOP,
    "enable_console_prompts": _NOOP,
    "gradio_queue": _NOOP,
    "add_stop_route": _NOOP,
    "no_gradio_queue": "gradio 5 and later always use their queue",
    "no_progressbar_hiding": "the progress bar is never hidden",
    "localizations_dir": "the UI is not localized",
    "clip_models_path": "there is no CLIP interrogator",
    "use_ipex": "Intel XPU is not supported",
    "gradio_allowed_path": "for safety, files are served only from the output folders and as model previews",
}


_XFORMERS_NOTE = "xformers is not used: attention runs on PyTorch SDPA, which does the same job; a warning says so"
# dest -> how the flag behaves in this app, appended to its help (no warning: the flag works).
NOTES: Mapping[str, str] = {
    "skip_torch_cuda_test": "this app never stops for a missing GPU: it runs on the CPU and warns unless this flag "
                            "or --use-cpu all is given",
    "opt_sdp_attention": "always the case here: attention runs on PyTorch SDPA",
    "xformers": _XFORMERS_NOTE,
    "force_enable_xformers": _XFORMERS_NOTE,
    "xformers_flash_attention": _XFORMERS_NOTE,
    "opt_sdp_no_mem_attention": "attention runs on PyTorch SDPA with the backend PyTorch picks",
    "medvram": "GPU only: moves each model part to the GPU while it runs",
    "medvram_sdxl": "GPU only: same as --medvram here",
    "lowvram": "GPU only: moves each layer to the GPU while it runs",
    "enable_insecure_extension_access": "without it, installing extensions from a URL is off when the server is "
                                        "reachable from the network (--listen, --server-name, --share)",
    "theme": "light or dark; without it the browser's preference is used",
    "gradio_auth": "HTTP Basic; protects the web UI, not /sdapi (use --api-auth for that)",
    "api_auth": "HTTP Basic; protects /sdapi and, when set, /docs, /redoc and /openapi.json",
    "server_name": "the address to bind; wins over --listen",
    "port": "without it the first free port from 7860 (7861 with --nowebui); 0 picks any free port",
    "autolaunch": "once the server is up",
    "device_id": "a CUDA device number, e.g. 0 or 1",
    "tls_keyfile": "with --tls-certfile the server speaks HTTPS",
    "tls_certfile": "with --tls-keyfile the server speaks HTTPS",
    "timeout_keep_alive": "seconds",
}


def normalized_filepath(value: str) -> str:
    """Kind "path" of spec §8: an absolute path string."""
    return str(Path(value).absolute())


def _add(parser: argparse.ArgumentParser, *flags: str, help: str = "", **kw) -> argparse.Action:
    """add_argument; the help of a flag listed in NO_EFFECT says why it does nothing here."""
    dest = kw.get("dest") or flags[-1].lstrip("-").replace("-", "_")
    if dest in NO_EFFECT:
        help = f"{help} [no effect in this app: {NO_EFFECT[dest]}]"
    elif dest in NOTES:
        help = f"{help} [{NOTES[dest]}]"
    return parser.add_argument(*flags, help=help, **kw)


def default_data_dir() -> str:
    return str(REPO_ROOT)


def _pre_parse(argv: Sequence[str]) -> tuple[str, str]:
    """--data-dir and --models-dir, which the other defaults depend on."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-dir", type=normalized_filepath, default=default_data_dir())
    pre.add_argument("--models-dir", type=normalized_filepath, default=None)
    ns, _ = pre.parse_known_args(list(argv))
    data_dir = ns.data_dir
    models_dir = ns.models_dir or os.path.join(data_dir, "models")
    return data_dir, models_dir


def build_parser(data_dir: str | None = None, models_dir: str | None = None) -> argparse.ArgumentParser:
    """The full parser; defaults that depend on the data/models folders use the given ones."""
    data_path = data_dir or default_data_dir()
    models_path = models_dir or os.path.join(data_path, "models")
    script_path = str(REPO_ROOT)
    p = argparse.ArgumentParser(prog="webui", description="Stable Diffusion web UI (diffusers backend, A1111-compatible flags)")
    a = lambda *f, **kw: _add(p, *f, **kw)  # noqa: E731
    path = normalized_filepath

    p.add_argument("-f", action="store_true", help=argparse.SUPPRESS)  # allow running as root; handled by webui.sh
    a("--update-all-extensions", action="store_true",
      help="launch.py argument: download updates for all extensions when starting the program")
    a("--skip-python-version-check", action="store_true", help="launch.py argument: do not check python version")
    a("--skip-torch-cuda-test", action="store_true", help="launch.py argument: do not check if CUDA is able to work properly")
    a("--reinstall-xformers", action="store_true",
      help="launch.py argument: install the appropriate version of xformers even if you have some version already installed")
    a("--reinstall-torch", action="store_true",
      help="launch.py argument: install the appropriate version of torch even if you have some version already installed")
    a("--update-check", action="store_true", help="launch.py argument: check for updates at startup")
    a("--test-server", action="store_true", help="launch.py argument: configure server for testing")
    a("--log-startup", action="store_true", help="launch.py argument: print a detailed log of what's happening at startup")
    a("--skip-prepare-environment", action="store_true", help="launch.py argument: skip all environment preparation")
    a("--skip-install", action="store_true", help="launch.py argument: skip installation of packages")
    a("--dump-sysinfo", action="store_true",
      help="launch.py argument: dump limited sysinfo file (without information about extensions, options) to disk and quit")
    a("--exit", action="store_true", help="launch.py argument: install the requirements, then exit without starting the UI")
    a("--loglevel", type=str, default=None, help="log level; one of: CRITICAL, ERROR, WARNING, INFO, DEBUG")
    a("--do-not-download-clip", action="store_true",
      help="do not download CLIP model even if it's not included in the checkpoint")
    a("--data-dir", type=path, default=data_path, help="base path where all user data is stored")
    a("--models-dir", type=path, default=None, help="base path where models are stored; overrides --data-dir")
    a("--config", type=path, default=os.path.join(script_path, "configs", "v1-inference.yaml"),
      help="path to config which constructs model")
    a("--ckpt", type=path, default=os.path.join(script_path, "model.ckpt"),
      help="path to checkpoint of stable diffusion model; if specified, this checkpoint will be added to the list of checkpoints and loaded")
    a("--ckpt-dir", type=path, default=None, help="Path to directory with stable diffusion checkpoints")
    a("--vae-dir", type=path, default=None, help="Path to directory with VAE files")
    gfpgan_dir = os.path.join(script_path, "src", "gfpgan")
    a("--gfpgan-dir", type=path, help="GFPGAN directory",
      default=gfpgan_dir if os.path.exists(gfpgan_dir) else os.path.join(script_path, "GFPGAN"))
    a("--gfpgan-model", type=path, default=None, help="GFPGAN model file name")
    a("--no-half", action="store_true", help="do not switch the model to 16-bit floats")
    a("--no-half-vae", action="store_true", help="do not switch the VAE model to 16-bit floats")
    a("--no-progressbar-hiding", action="store_true",
      help="do not hide progressbar in gradio UI (we hide it because it slows down ML if you have hardware acceleration in browser)")
    a("--max-batch-count", type=int, default=16, help="does not do anything")
    a("--embeddings-dir", type=path, default=os.path.join(data_path, "embeddings"),
      help="embeddings directory for textual inversion (default: embeddings); "
           "this app also always reads <models>/embeddings")
    a("--textual-inversion-templates-dir", type=path, default=os.path.join(script_path, "textual_inversion_templates"), help="directory with textual inversion templates")
    a("--hypernetwork-dir", type=path, default=os.path.join(models_path, "hypernetworks"), help="hypernetwork directory")
    a("--localizations-dir", type=path, default=os.path.join(script_path, "localizations"), help="localizations directory")
    a("--allow-code", action="store_true", help="allow custom script execution from webui")
    a("--medvram", action="store_true",
      help="enable stable diffusion model optimizations for sacrificing a little speed for low VRM usage")
    a("--medvram-sdxl", action="store_true", help="enable --medvram optimization just for SDXL models")
    a("--lowvram", action="store_true",
      help="enable stable diffusion model optimizations for sacrificing a lot of speed for very low VRM usage")
    a("--lowram", action="store_true", help="load stable diffusion checkpoint weights to VRAM instead of RAM")
    a("--always-batch-cond-uncond", action="store_true", help="does not do anything")
    a("--unload-gfpgan", action="store_true", help="does not do anything.")
    a("--precision", type=str, choices=["full", "half", "autocast"], default="autocast",
      help="evaluate at this precision")
    a("--upcast-sampling", action="store_true",
      help="upcast sampling. Always the case here: the sampler's latents and maths stay float32 and only the UNet "
           "call runs in half precision, so this flag changes nothing.")
    a("--share", action="store_true",
      help="use share=True for gradio and make the UI accessible through their site "
           "[not available: needs a tunnel to the internet; use --listen for your local network]")
    a("--ngrok", type=str, default=None,
      help="ngrok authtoken, alternative to gradio --share [not available: needs a tunnel to the internet]")
    a("--ngrok-region", type=str, default="", help="does not do anything.")
    a("--ngrok-options", type=json.loads, default=dict(),
      help='The options to pass to ngrok in JSON format, e.g.: \'{"authtoken_from_env":true, "basic_auth":"user:password", '
           '"oauth_provider":"google", "oauth_allow_emails":"user@asdf.com"}\'')
    a("--enable-insecure-extension-access", action="store_true", help="enable extensions tab regardless of other options")
    a("--codeformer-models-path", type=path, default=os.path.join(models_path, "Codeformer"),
      help="Path to directory with codeformer model file(s).")
    a("--gfpgan-models-path", type=path, default=os.path.join(models_path, "GFPGAN"),
      help="Path to directory with GFPGAN model file(s).")
    a("--esrgan-models-path", type=path, default=os.path.join(models_path, "ESRGAN"),
      help="Path to directory with ESRGAN model file(s).")
    a("--bsrgan-models-path", type=path, default=os.path.join(models_path, "BSRGAN"),
      help="Path to directory with BSRGAN model file(s).")
    a("--realesrgan-models-path", type=path, default=os.path.join(models_path, "RealESRGAN"),
      help="Path to directory with RealESRGAN model file(s).")
    a("--dat-models-path", type=path, default=os.path.join(models_path, "DAT"),
      help="Path to directory with DAT model file(s).")
    a("--clip-models-path", type=path, default=None,
      help="Path to directory with CLIP model file(s).")
    a("--xformers", action="store_true",
      help="enable xformers for cross attention layers")
    a("--force-enable-xformers", action="store_true",
      help="enable xformers for cross attention layers regardless of whether the checking code thinks you can run it; "
           "do not make bug reports if this fails to work")
    a("--xformers-flash-attention", action="store_true",
      help="enable xformers with Flash Attention to improve reproducibility (supported for SD2.x or variant only)")
    a("--deepdanbooru", action="store_true", help="does not do anything")
    a("--opt-split-attention", action="store_true",
      help="prefer Doggettx's cross-attention layer optimization for automatic choice of optimization")
    a("--opt-sub-quad-attention", action="store_true",
      help="prefer memory efficient sub-quadratic cross-attention layer optimization for automatic choice of optimization")
    a("--sub-quad-q-chunk-size", type=int, default=1024,
      help="query chunk size for the sub-quadratic cross-attention layer optimization to use")
    a("--sub-quad-kv-chunk-size", type=int, default=None,
      help="kv chunk size for the sub-quadratic cross-attention layer optimization to use")
    a("--sub-quad-chunk-threshold", type=int, default=None,
      help="the percentage of VRAM threshold for the sub-quadratic cross-attention layer optimization to use chunking")
    a("--opt-split-attention-invokeai", action="store_true",
      help="prefer InvokeAI's cross-attention layer optimization for automatic choice of optimization")
    a("--opt-split-attention-v1", action="store_true",
      help="prefer older version of split attention optimization for automatic choice of optimization")
    a("--opt-sdp-attention", action="store_true",
      help="prefer scaled dot product cross-attention layer optimization for automatic choice of optimization; requires PyTorch 2.*")
    a("--opt-sdp-no-mem-attention", action="store_true",
      help="prefer scaled dot product cross-attention layer optimization without memory efficient attention for automatic "
           "choice of optimization, makes image generation deterministic; requires PyTorch 2.*")
    a("--disable-opt-split-attention", action="store_true",
      help="prefer no cross-attention layer optimization for automatic choice of optimization")
    a("--disable-nan-check", action="store_true",
      help="do not check if produced images/latent spaces have nans; useful for running without a checkpoint in CI")
    a("--use-cpu", nargs="+", type=str.lower, default=[], help="use CPU as torch device for specified modules")
    a("--use-ipex", action="store_true", help="use Intel XPU as torch device")
    a("--disable-model-loading-ram-optimization", action="store_true",
      help="disable an optimization that reduces RAM use when loading a model")
    a("--listen", action="store_true",
      help="launch gradio with 0.0.0.0 as server name, allowing to respond to network requests")
    a("--port", type=int, default=None,
      help="launch gradio with given server port, you need root/admin rights for ports < 1024, defaults to 7860 if available")
    a("--show-negative-prompt", action="store_true", default=False, help="does not do anything")
    a("--ui-config-file", type=str, default=os.path.join(data_path, "ui-config.json"),
      help="filename to use for ui configuration")
    a("--hide-ui-dir-config", action="store_true", default=False, help="hide directory configuration from webui")
    a("--freeze-settings", action="store_true", default=False, help="disable editing of all settings globally")
    a("--freeze-settings-in-sections", type=str, default=None,
      help='disable editing settings in specific sections of the settings page by specifying a comma-delimited list such like '
           '"saving-images,upscaling". The list of setting names can be found in the modules/shared_options.py file')
    a("--freeze-specific-settings", type=str, default=None,
      help='disable editing of individual settings by specifying a comma-delimited list like "samples_save,samples_format". '
           'The list of setting names can be found in the config.json file')
    a("--ui-settings-file", type=str, default=os.path.join(data_path, "config.json"), help="filename to use for ui settings")
    a("--gradio-debug", action="store_true", help="launch gradio with --debug option")
    a("--gradio-auth", type=str, default=None,
      help='set gradio authentication like "username:password"; or comma-delimit multiple like "u1:p1,u2:p2,u3:p3"')
    a("--gradio-auth-path", type=path, default=None,
      help='set gradio authentication file path ex. "/path/to/auth/file" same auth format as --gradio-auth')
    a("--gradio-img2img-tool", type=str, help="does not do anything")
    a("--gradio-inpaint-tool", type=str, help="does not do anything")
    a("--gradio-allowed-path", action="append", default=[data_path],
      help="add path to gradio's allowed_paths, make it possible to serve files from it")
    a("--opt-channelslast", action="store_true", help="change memory type for stable diffusion to channels last")
    a("--compile", action="store_true",
      help="torch.compile the UNet and VAE decoder (CPU and CUDA); LoRA changes never recompile")
    a("--compile-mode", choices=["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"], default=None,
      help="torch.compile mode for --compile; default: reduce-overhead (CUDA graphs) on CUDA, default on CPU")
    a("--compile-backend", type=str, default="inductor", help="torch.compile backend for --compile (for debugging)")
    a("--styles-file", type=str, action="append", default=[],
      help="path or wildcard path of styles files, allow multiple entries.")
    a("--autolaunch", action="store_true", default=False,
      help="open the webui URL in the system's default browser upon launch")
    a("--theme", type=str, default=None, help="launches the UI with light or dark theme")
    a("--use-textbox-seed", action="store_true", default=False,
      help="use textbox for seeds in UI (no up/down, but possible to input long seeds)")
    a("--disable-console-progressbars", action="store_true", default=False, help="do not output progressbars to console")
    a("--enable-console-prompts", action="store_true", default=False, help="does not do anything")
    a("--vae-path", type=path, default=None,
      help="Checkpoint to use as VAE; setting this argument disables all settings related to VAE")
    a("--disable-safe-unpickle", action="store_true", default=False, help="disable checking pytorch models for malicious code")
    a("--api", action="store_true",
      help="use api=True to launch the API together with the webui (use --nowebui instead for only the API)")
    a("--api-auth", type=str, default=None,
      help='Set authentication for API like "username:password"; or comma-delimit multiple like "u1:p1,u2:p2,u3:p3"')
    a("--api-log", action="store_true", help="use api-log=True to enable logging of all API requests")
    a("--nowebui", action="store_true", help="use api=True to launch the API instead of the webui")
    a("--ui-debug-mode", action="store_true", help="Don't load model to quickly launch UI")
    a("--device-id", type=str, default=None,
      help="Select the default CUDA device to use (export CUDA_VISIBLE_DEVICES=0,1,etc might be needed before)")
    a("--administrator", action="store_true", default=False, help="Administrator rights")
    a("--cors-allow-origins", type=str, default=None,
      help="Allowed CORS origin(s) in the form of a comma-separated list (no spaces)")
    a("--cors-allow-origins-regex", type=str, default=None,
      help="Allowed CORS origin(s) in the form of a single regular expression")
    a("--tls-keyfile", type=str, default=None, help="Partially enables TLS, requires --tls-certfile to fully function")
    a("--tls-certfile", type=str, default=None, help="Partially enables TLS, requires --tls-keyfile to fully function")
    a("--disable-tls-verify", action="store_false", default=None,
      help="When passed, enables the use of self-signed certificates.")
    a("--server-name", type=str, default=None, help="Sets hostname of server")
    a("--gradio-queue", action="store_true", default=True, help="does not do anything")
    a("--no-gradio-queue", action="store_true",
      help="Disables gradio queue; causes the webpage to use http requests instead of websockets; was the default in earlier versions")
    a("--skip-version-check", action="store_true", help="Do not check versions of torch and xformers")
    a("--no-hashing", action="store_true", default=False,
      help="disable sha256 hashing of checkpoints to help loading performance")
    a("--no-download-sd-model", action="store_true", default=False,
      help="don't download SD1.5 model even if no model is found in --ckpt-dir")
    a("--subpath", type=str, help="customize the subpath for gradio, use with reverse proxy")
    a("--add-stop-route", action="store_true", help="does not do anything")
    a("--api-server-stop", action="store_true", help="enable server stop/restart/kill via api")
    a("--replicas", type=int, default=0,
      help="serve the API and the page in front of this many engine replicas on Ray Serve (one per GPU); needs the 'cluster' extra")
    a("--ray-address", type=str, default=None,
      help="with --replicas: join this Ray cluster (e.g. 10.0.0.5:6379) instead of starting one on this machine")
    a("--timeout-keep-alive", type=int, default=30, help="set timeout_keep_alive for uvicorn")
    a("--disable-all-extensions", action="store_true", default=False,
      help="prevent all extensions from running regardless of any other settings")
    a("--disable-extra-extensions", action="store_true", default=False,
      help="prevent all extensions except built-in from running regardless of any other settings")
    a("--skip-load-model-at-start", action="store_true",
      help="if load a model at web start, only take effect when --nowebui")
    a("--unix-filenames-sanitization", action="store_true",
      help="allow any symbols except '/' in filenames. May conflict with your browser and file system")
    a("--filenames-max-length", type=int, default=128,
      help="maximal length of filenames of saved images. If you override it, it can conflict with your file system")
    a("--no-prompt-history", action="store_true",
      help="disable read prompt from last generation feature; settings this argument will not create '--data_path/params.txt' file")

    # This app's own flags (A1111 has none for these): what one request may ask for, where images may go.
    bounds = RequestBounds()
    for dest, help_text in BOUND_HELP.items():
        default = getattr(bounds, dest)
        a(f"--{dest.replace('_', '-')}", type=type(default), default=default, help=f"{help_text} (default {default})")
    a("--allowed-output-path", action="append", default=[],
      help="a folder outside the data folder that the outdir_* settings may name (repeatable); without it, "
           "images are written only inside the data folder")

    # Flags that A1111's built-in extensions add in their preload.py.
    a("--lora-dir", type=str, default=os.path.join(models_path, "Lora"), help="Path to directory with Lora networks.")
    a("--lyco-dir-backcompat", type=str, default=os.path.join(models_path, "LyCORIS"),
      help="Path to directory with LyCORIS networks (for backwards compatibility; can also use --lyco-dir).")
    a("--ldsr-models-path", type=str, default=os.path.join(models_path, "LDSR"), help="LDSR models")
    a("--scunet-models-path", type=str, default=os.path.join(models_path, "ScuNET"), help="ScuNET models")
    a("--swinir-models-path", type=str, default=os.path.join(models_path, "SwinIR"), help="SwinIR models")
    return p


def _unknown_flag_message(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    flags = [s for act in parser._actions for s in act.option_strings if act.help is not argparse.SUPPRESS]
    for item in extras:
        if item.startswith("-") and item != "-":
            flag = item.split("=", 1)[0]
            close = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; run with --help for the list of flags"
            return f"unknown flag {flag}{hint}"
    return f"unexpected argument {extras[0]!r}"


class _PreloadParser:
    """The parser as an extension's preload sees it: a flag that already exists is kept, not redefined.

    A1111 extensions sometimes add a flag that a built-in already defines (``--lora-dir``);
    argparse would raise a conflict and stop the program.
    """

    def __init__(self, parser: argparse.ArgumentParser):
        self._parser = parser

    def add_argument(self, *flags, **kw):
        existing = self._parser._option_string_actions
        for flag in flags:
            if flag in existing:
                log.warning("an extension's preload adds %s, which already exists; keeping the existing one", flag)
                return existing[flag]
        return self._parser.add_argument(*flags, **kw)

    def __getattr__(self, name):
        return getattr(self._parser, name)


def parse_args(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
    preload: Iterable[PreloadHook] = (),
) -> argparse.Namespace:
    """Parse launch flags the way A1111 does.

    ``argv`` defaults to ``sys.argv[1:]``; ``COMMANDLINE_ARGS`` from ``environ`` is appended
    (shell-split). Each callable in ``preload`` receives the parser first (extensions'
    ``preload.py``). An unknown flag exits with code 2 and names the nearest valid flag,
    unless ``IGNORE_CMD_ARGS_ERRORS=1``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    args += shlex.split(environ.get("COMMANDLINE_ARGS", ""))
    data_dir, models_dir = _pre_parse(args)
    parser = build_parser(data_dir, models_dir)
    for hook in preload:
        hook(_PreloadParser(parser))

    if environ.get("IGNORE_CMD_ARGS_ERRORS", "") == "1":
        ns, _ = parser.parse_known_args(args)
    else:
        ns, extras = parser.parse_known_args(args)
        if extras:
            parser.exit(2, f"{parser.prog}: error: {_unknown_flag_message(parser, extras)}\n")

    ns.webui_is_non_local = any([ns.share, ns.listen, ns.ngrok, ns.server_name])
    ns.disable_extension_access = ns.webui_is_non_local and not ns.enable_insecure_extension_access
    return ns


THEMES = ("light", "dark")


def extension_install_allowed(args: argparse.Namespace) -> tuple[bool, str]:
    """Whether extensions may be installed or updated from a URL (A1111's ``disable_extension_access``).

    Installing one runs its code: from the network that is remote code execution for anyone
    who can reach the server, so it is off when the UI is exposed unless the user insists.
    """
    non_local = [flag for flag, dest in (("--share", "share"), ("--listen", "listen"), ("--ngrok", "ngrok"),
                                         ("--server-name", "server_name")) if getattr(args, dest, None)]
    if not non_local:
        return True, "the server only answers this machine"
    if getattr(args, "enable_insecure_extension_access", False):
        return True, (f"allowed by --enable-insecure-extension-access although the server is reachable from the "
                      f"network ({', '.join(non_local)})")
    return False, (f"installing extensions is disabled because the server is reachable from the network "
                   f"({', '.join(non_local)}); add --enable-insecure-extension-access to allow it")


def cuda_check_message(args: argparse.Namespace, cuda_available: bool | None = None) -> str | None:
    """A1111's start-up GPU check (``--skip-torch-cuda-test`` skips it), as a warning: this app runs on the CPU too."""
    if getattr(args, "skip_torch_cuda_test", False):
        return None
    use_cpu = {str(x).lower() for x in (getattr(args, "use_cpu", None) or [])}
    if use_cpu & {"all", "sd"}:
        return None
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return None
    return ("Torch is not able to use a GPU; running on the CPU, which is much slower. "
            "Add --skip-torch-cuda-test (or --use-cpu all) to COMMANDLINE_ARGS to hide this message.")


def xformers_installed() -> bool:
    return importlib.util.find_spec("xformers") is not None


def validate_args(args: argparse.Namespace, xformers_available: bool | None = None) -> list[str]:
    """Warnings for flags that cannot do what they ask here; SystemExit for those that cannot work at all."""
    if getattr(args, "share", False):
        raise SystemExit(
            "--share cannot work here: it needs a tunnel to the internet (gradio's share servers), and this app runs "
            "offline. Use --listen to serve the UI on your local network (add --gradio-auth to require a password)."
        )
    if getattr(args, "ngrok", None):
        raise SystemExit(
            "--ngrok cannot work here: it needs a tunnel to the internet, and this app runs offline. "
            "Use --listen to serve the UI on your local network (add --gradio-auth to require a password)."
        )

    device_id = getattr(args, "device_id", None)
    if device_id not in (None, "") and not str(device_id).strip().isdigit():
        raise SystemExit(f"--device-id {device_id!r}: expected a CUDA device number such as 0 or 1")

    warnings: list[str] = []
    theme = getattr(args, "theme", None)
    if theme is not None and theme not in THEMES:
        warnings.append(f"--theme {theme!r} is not one of {', '.join(THEMES)}; the browser's preference is used")
    if bool(getattr(args, "tls_keyfile", None)) != bool(getattr(args, "tls_certfile", None)):
        warnings.append("--tls-keyfile and --tls-certfile work only together; serving plain HTTP")
    wants_xformers = [f for f in ("xformers", "force_enable_xformers", "xformers_flash_attention") if getattr(args, f, False)]
    if wants_xformers:
        if xformers_available is None:
            xformers_available = xformers_installed()
        names = ", ".join("--" + f.replace("_", "-") for f in wants_xformers)
        # The diffusers models here always run PyTorch SDPA (memory-efficient/flash kernels on GPUs),
        # which does what xformers did for A1111; nothing switches them to xformers.
        why = "xformers is installed but this app does not use it" if xformers_available else "xformers is not installed"
        warnings.append(f"{names}: {why}; using PyTorch scaled-dot-product attention (SDPA) instead")

    defaults = {a.dest: a.default for a in build_parser(getattr(args, "data_dir", None), getattr(args, "models_dir", None))._actions}
    for dest, reason in NO_EFFECT.items():
        value = getattr(args, dest, None)
        if value != defaults.get(dest) and value not in (None, False, ""):
            warnings.append(f"--{dest.replace('_', '-')} has no effect in this app: {reason}")
    return warnings
