"""Run the Extra Networks browser on its own, for manual checks, tests and the benchmark.

    .venv/bin/python tools/demo_extra_networks.py [--data-dir DIR] [--loras 200] [--port 7870]

Without ``--data-dir`` a temporary folder is filled with generated adapters: tiny but valid
safetensors LoRAs (with kohya metadata, some in sub-folders and one hidden folder, most with a
PNG preview), textual inversions (one of SD2 width, listed as skipped), a hypernetwork file and
two checkpoint files (placeholders: switching to one shows the load error). The page has the
``#txt2img_prompt`` / ``#txt2img_neg_prompt`` textboxes of the real UI, an "Echo" button that
copies the prompt through Python (to see that Gradio got the edit), and the browser's tabs.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# A LoRA key the family guess does not read (so the metadata decides) and its 1x4 F32 zeros.
_LORA_KEY = "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"


def safetensors_bytes(tensors: dict[str, tuple[list[int], bytes]], metadata: dict[str, str] | None) -> bytes:
    """A valid safetensors file: ``{key: (shape, raw F32 bytes)}`` plus string metadata."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    data = b""
    for key, (shape, raw) in tensors.items():
        header[key] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tiny_lora(metadata: dict[str, str] | None = None) -> bytes:
    return safetensors_bytes({_LORA_KEY: ([1, 4], b"\0" * 16)}, metadata)


def tiny_embedding(width: int = 768, vectors: int = 1) -> bytes:
    return safetensors_bytes({"emb_params": ([vectors, width], b"\0" * (4 * vectors * width))}, None)


def preview_pngs(count: int = 16, size: int = 96) -> list[bytes]:
    """Distinct small PNGs (colour gradients) to use as previews."""
    from PIL import Image

    out = []
    for i in range(count):
        hue = i / count
        img = Image.new("RGB", (size, size))
        px = img.load()
        for y in range(size):
            for x in range(size):
                t = (x + y) / (2 * size)
                px[x, y] = (int(255 * abs((hue * 3 + t) % 1 - 0.5) * 2), int(255 * (1 - t) * 0.8),
                            int(255 * ((hue + 0.5) % 1)))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def write_loras(lora_dir: Path, count: int, *, previews: bool = True, prefix: str = "lora") -> list[Path]:
    """``count`` LoRA files spread over a few sub-folders; every third SDXL, most with a preview."""
    pngs = preview_pngs() if previews else []
    folders = ["", "characters", "styles", "styles/painting", "concepts"]
    written = []
    for i in range(count):
        sub = folders[i % len(folders)]
        folder = lora_dir / sub if sub else lora_dir
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}_{i:05d}"
        meta = {"ss_output_name": f"{prefix}-alias-{i:05d}", "ss_network_module": "networks.lora"}
        if i % 3 == 2:
            meta["ss_base_model_version"] = "sdxl_base_v1-0"
        path = folder / f"{name}.safetensors"
        path.write_bytes(tiny_lora(meta))
        if pngs and i % 7 != 6:
            (folder / f"{name}.png").write_bytes(pngs[i % len(pngs)])
        written.append(path)
    return written


def write_sample_data(data_dir: Path, loras: int = 24) -> Path:
    """The demo's models folder (see the module docstring). Returns ``data_dir``."""
    models = data_dir / "models"
    lora_dir = models / "Lora"
    write_loras(lora_dir, loras)
    hidden = lora_dir / ".secret"
    hidden.mkdir(parents=True, exist_ok=True)
    (hidden / "hidden_style.safetensors").write_bytes(tiny_lora({"ss_network_module": "networks.lora"}))
    (lora_dir / "described.safetensors").write_bytes(tiny_lora({"ss_output_name": "described"}))
    (lora_dir / "described.txt").write_text("A LoRA with a description from described.txt", encoding="utf-8")

    emb = models / "embeddings"
    emb.mkdir(parents=True, exist_ok=True)
    (emb / "easynegative.safetensors").write_bytes(tiny_embedding(768, 2))
    (emb / "style-word.safetensors").write_bytes(tiny_embedding(768, 1))
    (emb / "sd2-only.safetensors").write_bytes(tiny_embedding(1024, 1))

    hyper = models / "hypernetworks"
    hyper.mkdir(parents=True, exist_ok=True)
    (hyper / "anime_hn.pt").write_bytes(b"placeholder: listing never reads it")

    ckpt = models / "Stable-diffusion"
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "placeholder-model.safetensors").write_bytes(tiny_lora({"note": "not a real checkpoint"}))
    (ckpt / "other-model.safetensors").write_bytes(tiny_lora({"note": "not a real checkpoint"}))
    return data_dir


def make_engine(data_dir: Path) -> Any:
    """An Engine over ``data_dir`` (no model loaded; nothing is read from the hub)."""
    from modules.settings import cmd_args
    from modules.engine.devices import DeviceConfig
    from modules.engine.engine import Engine
    from modules.settings.options import Options
    from modules.settings.paths import Paths

    args = cmd_args.parse_args(["--data-dir", str(data_dir)], environ={})
    paths = Paths.from_args(args, REPO_ROOT, environ={"SD_WEBUI_CACHE_DIR": str(data_dir / "cache")})
    Path(paths.cache_dir).mkdir(parents=True, exist_ok=True)
    engine = Engine(args=args, paths=paths, options=Options(None), devices=DeviceConfig.from_args(args))
    engine.refresh_checkpoints()
    return engine


class _WordTokenizer:
    """Stands in for CLIP's tokenizer when embeddings are checked without a model: one id per word."""

    def __call__(self, texts, **_: Any) -> dict:
        return {"input_ids": [[abs(hash(t)) % 49000 + 1] for t in texts]}


def check_embeddings_without_model(engine: Any, width: int = 768) -> None:
    """Load the embedding files as for a model of text width ``width``: the others become "skipped"."""
    networks = engine.networks
    files = [e.path for e in networks.embedding_files.items()]
    networks.embeddings.load(files, tokenizer=_WordTokenizer(), expected_width=width)


def build_blocks(engine: Any) -> Any:
    """A1111's layout in small: prompts on top, then "Generation" and the extra-network tabs."""
    import gradio as gr

    from modules.page.extra_networks import create_extra_networks_ui

    with gr.Blocks(title="Extra networks demo") as demo:
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id="txt2img_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=1, elem_id="txt2img_neg_prompt")
        with gr.Row():
            echo_button = gr.Button("Echo the prompts through Python", elem_id="demo_echo", scale=0)
            echo = gr.Textbox(show_label=False, elem_id="demo_echo_out", interactive=False, lines=1)
        echo_button.click(lambda p, n: f"{p} || {n}", inputs=[prompt, negative], outputs=[echo])
        with gr.Tabs(elem_id="txt2img_extra_tabs"):
            with gr.Tab("Generation", id="txt2img_generation", elem_id="txt2img_generation"):
                gr.Markdown("Generation settings would be here. The other tabs are the extra networks browser.")
            create_extra_networks_ui(engine, "txt2img")
    return demo


def create_app(engine: Any) -> Any:
    import gradio as gr
    from fastapi import FastAPI

    from modules.page.extra_networks import mount_extra_networks_routes

    app = FastAPI()
    gr.mount_gradio_app(app, build_blocks(engine), path="/")
    mount_extra_networks_routes(app, engine)  # after the mount on purpose: the routes still come first
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        help="use this data folder (models/Lora, ...) instead of generated files")
    parser.add_argument("--loras", type=int, default=24, help="generated LoRA files (without --data-dir)")
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--embedding-width", type=int, default=768,
                        help="check embeddings against this text width (no model is loaded); 0: do not")
    args = parser.parse_args(argv)

    import uvicorn

    data_dir = args.data_dir
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="extra-networks-demo-"))
        write_sample_data(data_dir, args.loras)
        print(f"sample data in {data_dir}")
    engine = make_engine(data_dir)
    if args.embedding_width:
        check_embeddings_without_model(engine, args.embedding_width)
    print(f"open http://127.0.0.1:{args.port}/", flush=True)
    uvicorn.run(create_app(engine), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
