"""Launch flags: A1111 names and defaults, COMMANDLINE_ARGS, unknown-flag hints, flags that cannot work here."""
import argparse
import os

import pytest

from modules.settings import cmd_args
from modules.settings.cmd_args import build_parser, parse_args, validate_args


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
    assert warnings == ["--xformers: xformers is not installed; using PyTorch scaled-dot-product attention (SDPA) instead"]
    # never used, even when installed: still a warning, never an exit
    warnings = validate_args(parse_args(["--xformers", "--xformers-flash-attention"], environ={}), xformers_available=True)
    assert warnings == ["--xformers, --xformers-flash-attention: xformers is installed but this app does not use it; "
                        "using PyTorch scaled-dot-product attention (SDPA) instead"]


def test_no_effect_flags_warn_only_when_given():
    assert validate_args(parse_args([], environ={}), xformers_available=False) == []
    warnings = validate_args(parse_args(["--opt-split-attention", "--max-batch-count", "4"], environ={}))
    assert any(w.startswith("--opt-split-attention has no effect") for w in warnings)
    assert any(w.startswith("--max-batch-count has no effect") for w in warnings)
    warnings = validate_args(parse_args(["--gradio-allowed-path", "/srv/pics"], environ={}))
    assert warnings == ["--gradio-allowed-path has no effect in this app: for safety, files are served only from the "
                        "output folders and as model previews"]


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


# --- the flags of issue 6: documented, and reaching what they control -----------------------------------------

ISSUE_FLAGS = [
    "--listen", "--port", "--api", "--nowebui", "--api-auth", "--gradio-auth", "--gradio-auth-path", "--share",
    "--autolaunch", "--theme", "--data-dir", "--models-dir", "--ckpt", "--ckpt-dir", "--vae-dir", "--lora-dir",
    "--hypernetwork-dir", "--embeddings-dir", "--styles-file", "--ui-settings-file", "--medvram", "--lowvram",
    "--no-half", "--no-half-vae", "--precision", "--upcast-sampling", "--use-cpu", "--device-id", "--xformers",
    "--opt-sdp-attention", "--disable-safe-unpickle", "--enable-insecure-extension-access", "--skip-torch-cuda-test",
    "--no-hashing", "--exit", "--server-name",
]


def test_help_documents_every_flag():
    parser = build_parser()
    text = " ".join(parser.format_help().split())  # argparse wraps lines
    for action in parser._actions:
        if action.help is argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), action.option_strings
        for flag in action.option_strings:
            assert flag in text, flag
    for flag in ISSUE_FLAGS:
        assert flag in text, flag
    helps = {s: a.help for a in parser._actions for s in a.option_strings}
    assert "SDPA" in helps["--opt-sdp-attention"] and "SDPA" in helps["--xformers"]
    assert "internet" in helps["--share"]
    assert "network" in helps["--enable-insecure-extension-access"]
    assert "CPU" in helps["--skip-torch-cuda-test"]
    assert "light or dark" in helps["--theme"]


def test_main_help_and_exit(capsys, monkeypatch):
    import webui

    monkeypatch.delenv("COMMANDLINE_ARGS", raising=False)
    assert webui.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--gradio-auth-path" in out and "--disable-safe-unpickle" in out
    assert webui.main(["--exit"]) == 0
    assert "--exit given, not launching" in capsys.readouterr().out
    assert webui.main(["--lisen"]) == 2
    assert "did you mean --listen?" in capsys.readouterr().err


@pytest.mark.parametrize("flags, words", [
    (["--share"], ["--share cannot work here", "internet", "--listen"]),
    (["--ngrok", "token"], ["--ngrok cannot work here", "internet"]),
    (["--device-id", "gpu0"], ["--device-id 'gpu0'", "device number"]),
    (["--gradio-auth", "user-without-password"], ["--gradio-auth: entry 1 is not of the form username:password"]),
    (["--api-auth", "a:b,broken"], ["--api-auth: entry 2"]),
])
def test_main_refuses_flags_that_cannot_work(capsys, monkeypatch, tmp_path, flags, words):
    import webui

    monkeypatch.delenv("COMMANDLINE_ARGS", raising=False)
    monkeypatch.setattr(webui, "build_engine", lambda args: pytest.fail("should stop before building anything"))
    assert webui.main(["--data-dir", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "user-without-password" not in err.replace("--gradio-auth", "")  # an entry may be a password
    assert not (tmp_path / "outputs").exists()


def test_main_reads_commandline_args_from_the_environment(capsys, monkeypatch, tmp_path):
    import webui

    monkeypatch.setenv("COMMANDLINE_ARGS", "--share")
    assert webui.main(["--data-dir", str(tmp_path)]) == 1
    assert "--share cannot work here" in capsys.readouterr().err


def test_validate_theme_device_id_tls():
    assert validate_args(parse_args(["--theme", "dark"], environ={})) == []
    assert validate_args(parse_args(["--theme", "light"], environ={})) == []
    w = validate_args(parse_args(["--theme", "blue"], environ={}))
    assert len(w) == 1 and "--theme 'blue'" in w[0] and "light, dark" in w[0]
    assert validate_args(parse_args(["--device-id", "1"], environ={})) == []
    with pytest.raises(SystemExit, match="expected a CUDA device number"):
        validate_args(parse_args(["--device-id", "cuda:1"], environ={}))
    w = validate_args(parse_args(["--tls-keyfile", "k.pem"], environ={}))
    assert w == ["--tls-keyfile and --tls-certfile work only together; serving plain HTTP"]


def test_extension_install_allowed():
    allowed = lambda *f: cmd_args.extension_install_allowed(parse_args(list(f), environ={}))  # noqa: E731
    ok, reason = allowed()
    assert ok and "only answers this machine" in reason
    for flags in (["--listen"], ["--server-name", "box"], ["--share"], ["--ngrok", "t"]):
        ok, reason = allowed(*flags)
        assert not ok and flags[0] in reason and "--enable-insecure-extension-access" in reason
    ok, reason = allowed("--listen", "--enable-insecure-extension-access")
    assert ok and "--listen" in reason
    # the same decision as A1111's derived flag
    args = parse_args(["--listen"], environ={})
    assert args.disable_extension_access is (not cmd_args.extension_install_allowed(args)[0])


def test_cuda_check_message():
    args = parse_args([], environ={})
    msg = cmd_args.cuda_check_message(args, cuda_available=False)
    assert "running on the CPU" in msg and "--skip-torch-cuda-test" in msg
    assert cmd_args.cuda_check_message(args, cuda_available=True) is None
    assert cmd_args.cuda_check_message(parse_args(["--skip-torch-cuda-test"], environ={}), cuda_available=False) is None
    assert cmd_args.cuda_check_message(parse_args(["--use-cpu", "all"], environ={}), cuda_available=False) is None


def test_folder_flags_reach_paths(tmp_path):
    from modules.settings.paths import Paths

    d, m = tmp_path / "d", tmp_path / "m"
    args = parse_args(["--data-dir", str(d), "--models-dir", str(m), "--ckpt-dir", str(tmp_path / "ck"),
                       "--vae-dir", str(tmp_path / "vae"), "--lora-dir", str(tmp_path / "lora"),
                       "--hypernetwork-dir", str(tmp_path / "hn"), "--embeddings-dir", str(tmp_path / "emb"),
                       "--styles-file", str(tmp_path / "s1.csv"), "--ui-settings-file", str(tmp_path / "cfg.json")],
                      environ={})
    paths = Paths.from_args(args, tmp_path / "repo", environ={})
    assert paths.data_dir == d and paths.models_dir == m and paths.outputs_dir == d / "outputs"
    assert paths.ckpt_dirs == (tmp_path / "ck", m / "Stable-diffusion")
    assert paths.vae_dirs == (m / "VAE", tmp_path / "vae")
    assert paths.lora_dirs[0] == tmp_path / "lora" and paths.hypernetwork_dirs == (tmp_path / "hn",)
    assert tmp_path / "emb" in paths.embeddings_dirs
    assert paths.styles_files == (tmp_path / "s1.csv",) and paths.config_file == tmp_path / "cfg.json"


def test_device_flags_reach_the_device_config():
    import torch

    from modules.engine.devices import DeviceConfig

    dev = lambda *f, cuda=True: DeviceConfig.from_args(parse_args(list(f), environ={}), cuda_available=cuda)  # noqa: E731
    gpu = dev()
    assert gpu.device == torch.device("cuda") and gpu.dtype == torch.float16 and gpu.autocast and gpu.offload == "none"
    assert dev("--device-id", "1").device == torch.device("cuda:1")
    assert dev("--use-cpu", "all").device == torch.device("cpu") and dev("--use-cpu", "SD").device.type == "cpu"
    assert dev(cuda=False).device.type == "cpu" and dev(cuda=False).dtype == torch.float32
    assert dev("--no-half").dtype == torch.float32 and dev("--no-half").vae_dtype == torch.float32
    assert dev("--no-half-vae").dtype == torch.float16 and dev("--no-half-vae").vae_dtype == torch.float32
    assert dev("--precision", "full").autocast is False
    assert dev("--medvram").offload == "model" and dev("--lowvram").offload == "sequential"
    assert dev("--medvram", cuda=False).offload == "none"
    assert dev("--upcast-sampling").upcast_sampling is True


def test_engine_flags_reach_the_engine(tmp_path):
    import webui

    other = tmp_path / "elsewhere" / "picked.safetensors"
    other.parent.mkdir()
    other.write_bytes(b"listing never reads the file")
    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "first.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text('{"sd_model_checkpoint": "first.safetensors"}')
    args = parse_args(["--data-dir", str(tmp_path), "--no-hashing", "--disable-safe-unpickle", "--ckpt", str(other)],
                      environ={})
    engine = webui.build_engine(args)
    assert engine.hash_cache.enabled is False
    assert engine.networks.allow_unsafe_pickle is True
    assert engine.checkpoints.cmd_ckpt is not None and engine.checkpoints.cmd_ckpt.filename == str(other)
    assert engine.options.get("sd_model_checkpoint") == engine.checkpoints.cmd_ckpt.title  # --ckpt wins
    plain = webui.build_engine(parse_args(["--data-dir", str(tmp_path)], environ={}))
    assert plain.hash_cache.enabled is True and plain.networks.allow_unsafe_pickle is False
    assert plain.options.get("sd_model_checkpoint") == "first.safetensors"
