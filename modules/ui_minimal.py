"""The minimal generation page (the full A1111-style UI is its own module later).

UI code only gathers fields into a GenerationRequest and shows the Processed result.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from modules import samplers
from modules.generation_request import GenerationRequest, RequestError

HOW_TO_ADD = (
    "No checkpoint found in `models/Stable-diffusion`: running on the small built-in model, "
    "whose pictures are noise-like. Put a `.safetensors` checkpoint (SD 1.x, SD 2.x or SDXL) in "
    "`models/Stable-diffusion/` and press the refresh button."
)


def create_ui(engine: Any) -> gr.Blocks:
    sampler_names = [s.name for s in samplers.SAMPLERS]
    schedule_labels = [s.label for s in samplers.SCHEDULERS]

    def checkpoint_titles() -> list[str]:
        return [c.title for c in engine.available_checkpoints()]

    def notice() -> str:
        return "" if engine.checkpoints.list() else HOW_TO_ADD

    with gr.Blocks(title="Stable Diffusion") as demo:
        with gr.Row():
            titles = checkpoint_titles()
            ckpt = gr.Dropdown(label="Stable Diffusion checkpoint", choices=titles, value=titles[0] if titles else None,
                               elem_id="setting_sd_model_checkpoint")
            refresh = gr.Button("🔄", elem_id="refresh_sd_model_checkpoint", scale=0)
        info_md = gr.Markdown(notice(), elem_id="checkpoint_notice")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt")
                negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt")
                with gr.Row():
                    sampler = gr.Dropdown(label="Sampling method", choices=sampler_names, value="DPM++ 2M", elem_id="txt2img_sampling")
                    schedule = gr.Dropdown(label="Schedule type", choices=schedule_labels, value="Automatic", elem_id="txt2img_scheduler")
                    steps = gr.Slider(1, 150, value=20, step=1, label="Sampling steps", elem_id="txt2img_steps")
                with gr.Row():
                    width = gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id="txt2img_width")
                    height = gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id="txt2img_height")
                with gr.Row():
                    batch_count = gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id="txt2img_batch_count")
                    batch_size = gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id="txt2img_batch_size")
                    cfg = gr.Slider(1.0, 30.0, value=7.0, step=0.5, label="CFG Scale", elem_id="txt2img_cfg_scale")
                    seed = gr.Number(value=-1, label="Seed", precision=0, elem_id="txt2img_seed")
            with gr.Column(scale=2):
                generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
                interrupt = gr.Button("Interrupt", elem_id="txt2img_interrupt")
                gallery = gr.Gallery(label="Output", elem_id="txt2img_gallery", columns=2, format="png")
                infotext = gr.Textbox(label="Generation info", lines=4, interactive=False, elem_id="html_info_txt2img")
                error = gr.Markdown("", elem_id="txt2img_error")

        def on_generate(ckpt_title, p, n, smp, sch, st, w, h, bc, bs, c, sd):
            try:
                if ckpt_title:
                    engine.options.set("sd_model_checkpoint", ckpt_title)
                req = GenerationRequest(prompt=p or "", negative_prompt=n or "", sampler_name=smp, scheduler=sch, steps=int(st),
                                        width=int(w), height=int(h), n_iter=int(bc), batch_size=int(bs), cfg_scale=float(c),
                                        seed=int(sd if sd is not None else -1))
                processed = engine.generate(req)
            except (RequestError, ValueError, RuntimeError) as exc:
                return gr.update(), gr.update(), f"**Error:** {exc}"
            warn = "\n".join(f"- {w}" for w in processed.warnings)
            return processed.images, processed.infotext, warn

        generate.click(on_generate, inputs=[ckpt, prompt, negative, sampler, schedule, steps, width, height, batch_count, batch_size, cfg, seed],
                       outputs=[gallery, infotext, error])
        interrupt.click(lambda: engine.state.interrupt(), inputs=None, outputs=None)

        def on_refresh():
            engine.refresh_checkpoints()
            return gr.update(choices=checkpoint_titles()), notice()

        refresh.click(on_refresh, inputs=None, outputs=[ckpt, info_md])
    return demo
