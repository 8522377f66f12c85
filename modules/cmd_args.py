"""A1111's ``modules.cmd_args``: the launch flags. A thin facade; the code lives in ``modules.settings.cmd_args``."""
from modules.settings.cmd_args import (  # noqa: F401
    REPO_ROOT, PreloadHook, NO_EFFECT, NOTES, normalized_filepath, default_data_dir, build_parser, parse_args,
    THEMES, extension_install_allowed, cuda_check_message, xformers_installed, validate_args,
)


def __getattr__(name):
    if name == "parser":  # A1111's module-level parser; extensions read the app's flags with it
        from modules.scripting import runtime
        from modules.scripting.a1111_shared import AppArgsParser

        return AppArgsParser(runtime.current(required=False))
    raise AttributeError(f"module 'modules.cmd_args' has no attribute {name!r}")
