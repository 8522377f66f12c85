"""Launch flags: A1111 names and defaults, COMMANDLINE_ARGS, unknown-flag hints, flags that cannot work here."""
import argparse
import os

import pytest

from modules import cmd_args
from modules.cmd_args import build_parser, parse_args, validate_args


def test_defaults_match_a1111(repo_root):
    args = parse_args([], environ={})
    assert args.data_dir == str(repo_root)
    assert args.models_dir is None
    assert args.ckpt == os.path.join(str(repo_root), "model.ckpt")
    assert args.config == os.path.join(str(repo_root), "configs", "v1-inference.yaml")
    assert args.ckpt_dir is None and args.vae_dir is None and args.vae_path is None
    assert args.embeddings_dir == os.path.join(str(repo_root), "embeddings")
    assert args.hypernetwork_dir == os.path.join(str(repo_root), "models", "hypernetworks")
    assert args.lora_dir == os.path.join(str(repo_root), "models", "Lora")
    assert args.lyco_dir_backcompat == os.path.join(str(repo_root), "models", "LyCORIS")
    assert args.ui_settings_file == os.path.join(str(repo_root), "config.json")
    assert args.ui_config_file == os.path.join(str(repo_root), "ui-config.json")
    assert args.precision == "autocast"
    assert args.port is None
    assert args.use_cpu == []
    assert args.styles_file == []
    assert args.gradio_allowed_path == [str(repo_root)]
    assert args.ngrok_options == {}
    assert args.ngrok_region == ""
    assert args.max_batch_count == 16
    assert args.sub_quad_q_chunk_size == 1024
    assert args.timeout_keep_alive == 30
    assert args.filenames_max_length == 128
    assert args.gradio_queue is True
    assert args.disable_tls_verify is None
    assert args.listen is False and args.api is False and args.no_hashing is False and args.exit is False
    assert args.webui_is_non_local is False and args.disable_extension_access is False


def test_every_spec_flag_exists():
    parser = build_parser()
    strings = {s for a in parser._actions for s in a.option_strings}
    for flag in [
        "-f", "--update-all-extensions", "--skip-torch-cuda-test", "--reinstall-xformers", "--dump-sysinfo", "--loglevel",
        "--data-dir", "--models-dir", "--config", "--ckpt", "--ckpt-dir", "--vae-dir", "--gfpgan-dir", "--no-half",
        "--no-half-vae", "--embeddings-dir", "--hypernetwork-dir", "--allow-code", "--medvram", "--medvram-sdxl",
        "--lowvram", "--lowram", "--precision", "--upcast-sampling", "--share", "--ngrok", "--ngrok-options",
        "--enable-insecure-extension-access", "--esrgan-models-path", "--xformers", "--opt-sdp-attention",
        "--opt-sdp-no-mem-attention", "--disable-nan-check", "--use-cpu", "--listen", "--port", "--ui-config-file",
        "--freeze-settings", "--ui-settings-file", "--gradio-auth", "--gradio-auth-path", "--gradio-allowed-path",
        "--styles-file", "--autolaunch", "--theme", "--vae-path", "--disable-safe-unpickle", "--api", "--api-auth",
        "--api-log", "--nowebui", "--device-id", "--cors-allow-origins", "--cors-allow-origins-regex", "--tls-keyfile",
        "--tls-certfile", "--disable-tls-verify", "--server-name", "--no-gradio-queue", "--no-hashing", "--subpath",
        "--api-server-stop", "--timeout-keep-alive", "--disable-all-extensions", "--disable-extra-extensions",
        "--skip-load-model-at-start", "--unix-filenames-sanitization", "--filenames-max-length", "--no-prompt-history",
        "--lora-dir", "--lyco-dir-backcompat", "--ldsr-models-path", "--scunet-models-path", "--swinir-models-path",
        "--exit",
    ]:
        assert flag in strings, flag


def test_verbatim_help_texts():
    helps = {s: a.help for a in build_parser()._actions for s in a.option_strings}
    assert helps["--listen"] == "launch gradio with 0.0.0.0 as server name, allowing to respond to network requests"
    assert helps["--no-hashing"] == "disable sha256 hashing of checkpoints to help loading performance"
    assert helps["--lora-dir"] == "Path to directory with Lora networks."
    # a flag with no meaning here still parses and says so
    assert helps["--opt-split-attention"].startswith("prefer Doggettx's cross-attention layer optimization")
    assert "no effect in this app" in helps["--opt-split-attention"]
    assert "no effect in this app" in helps["--deepdanbooru"]


def test_kinds():
    args = parse_args(["--port", "7870", "--use-cpu", "SD", "Interrogate", "--styles-file", "a.csv", "--styles-file",
                       "b*.csv", "--ngrok-options", '{"a": 1}', "--disable-tls-verify", "--precision", "full",
                       "--ckpt-dir", "rel/dir"], environ={})
    assert args.port == 7870
    assert args.use_cpu == ["sd", "interrogate"]
    assert args.styles_file == ["a.csv", "b*.csv"]
    assert args.ngrok_options == {"a": 1}
    assert args.disable_tls_verify is False
    assert args.precision == "full"
    assert args.ckpt_dir == os.path.abspath("rel/dir")  # kind "path": absolute


def test_data_and_models_dir_are_preparsed(tmp_path):
    args = parse_args(["--data-dir", str(tmp_path / "d")], environ={})
    assert args.ui_settings_file == str(tmp_path / "d" / "config.json")
    assert args.hypernetwork_dir == str(tmp_path / "d" / "models" / "hypernetworks")
    assert args.gradio_allowed_path == [str(tmp_path / "d")]
    args = parse_args(["--data-dir", str(tmp_path / "d"), "--models-dir", str(tmp_path / "m")], environ={})
    assert args.lora_dir == str(tmp_path / "m" / "Lora")
    assert args.ui_settings_file == str(tmp_path / "d" / "config.json")


def test_commandline_args_are_appended(tmp_path):
    env = {"COMMANDLINE_ARGS": f'--listen --port 9000 --data-dir "{tmp_path}/with space"'}
    args = parse_args(["--api"], environ=env)
    assert args.api and args.listen and args.port == 9000
    assert args.data_dir == str(tmp_path / "with space")
    assert args.ui_settings_file == str(tmp_path / "with space" / "config.json")  # pre-parse sees them too
    assert args.webui_is_non_local is True and args.disable_extension_access is True
    # appended: the environment wins over an earlier command-line value
    assert parse_args(["--port", "1"], environ={"COMMANDLINE_ARGS": "--port 2"}).port == 2


def test_unknown_flag_suggests_nearest(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--lisen"], environ={})
    assert e.value.code == 2
    assert "unknown flag --lisen; did you mean --listen?" in capsys.readouterr().err


def test_unknown_flag_with_value_and_no_match(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--ckpt-dri=/x"], environ={})
    assert e.value.code == 2
    assert "unknown flag --ckpt-dri; did you mean --ckpt-dir?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        parse_args(["--zzzzzzzzzzzz"], environ={})
    assert e.value.code == 2
    assert "unknown flag --zzzzzzzzzzzz" in capsys.readouterr().err


def test_ignore_cmd_args_errors():
    args = parse_args(["--lisen", "--api"], environ={"IGNORE_CMD_ARGS_ERRORS": "1"})
    assert args.api is True


def test_bad_value_exits_2():
    with pytest.raises(SystemExit) as e:
        parse_args(["--port", "abc"], environ={})
    assert e.value.code == 2


def test_share_is_an_error_with_reason():
    args = parse_args(["--share"], environ={})
    with pytest.raises(SystemExit) as e:
        validate_args(args)
    assert e.value.code not in (0, None)
    assert "internet" in str(e.value.code) and "--listen" in str(e.value.code)


def test_xformers_missing_is_only_a_warning():
    args = parse_args(["--xformers"], environ={})
    warnings = validate_args(args, xformers_available=False)
    assert len(warnings) == 1 and "SDPA" in warnings[0] and "--xformers" in warnings[0]
    assert validate_args(args, xformers_available=True) == []


def test_no_effect_flags_warn_only_when_given():
    assert validate_args(parse_args([], environ={}), xformers_available=False) == []
    warnings = validate_args(parse_args(["--opt-split-attention", "--max-batch-count", "4"], environ={}))
    assert any(w.startswith("--opt-split-attention has no effect") for w in warnings)
    assert any(w.startswith("--max-batch-count has no effect") for w in warnings)


def test_preload_hooks_add_arguments():
    def preload(parser):
        parser.add_argument("--my-ext-flag", type=int, default=3)
        parser.add_argument("--lora-dir", type=str, default="ignored")  # already defined: kept, no crash

    args = parse_args(["--my-ext-flag", "5"], environ={}, preload=[preload])
    assert args.my_ext_flag == 5
    assert args.lora_dir.endswith(os.path.join("models", "Lora"))
    # and unknown without the hook
    with pytest.raises(SystemExit):
        parse_args(["--my-ext-flag", "5"], environ={})


def test_argv_none_reads_sys_argv(monkeypatch):
    monkeypatch.setattr("sys.argv", ["webui.py", "--nowebui"])
    assert parse_args(environ={}).nowebui is True


def test_parser_type():
    assert isinstance(build_parser(), argparse.ArgumentParser)
    assert set(cmd_args.NO_EFFECT) <= {a.dest for a in build_parser()._actions}
