"""The app's page (Gradio): a weights bar, a **Generate** tab and an **Edit** tab over one :class:`Studio`.

Errors about the user's input (:class:`~sonic.app.studio.AppError`) appear in the page as a Gradio error
notice that stays until closed; anything else is a bug and shows Gradio's own error (and the traceback in the
terminal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sonic.app.studio import AppError, Studio, read_image

log = logging.getLogger(__name__)

# images are shown at the panel's size, pixels kept sharp (the demo's are 64 px)
CSS = """#edit-out img, #edit-preview img {width: 100%; height: 100%; object-fit: contain;}
#edit-out img, #edit-preview img, #gen-gallery img {image-rendering: pixelated;}"""
TITLE = "SonicDiffusion"
ABOUT = ("Audio-driven image generation and audio-guided editing with a frozen Stable Diffusion "
         "(Biner et al.). Upload or record a sound; the image follows it.")


def _in_page(fn: Callable, progress: bool = False) -> Callable:
    """``fn`` with an :class:`AppError` shown in the page as a notice that stays until closed, instead of a stack
    trace; ``progress``: ``fn`` takes ``progress(fraction, text)``, drawn as Gradio's progress bar."""
    import gradio as gr

    def notice(err: AppError) -> gr.Error:
        log.info("app: %s", err)
        return gr.Error(str(err), duration=None, print_exception=False)

    if progress:
        def run(*args, progress=gr.Progress()):  # Gradio passes its tracker to a parameter defaulting to one
            try:
                return fn(*args, progress=lambda f, text: progress(f, desc=text))
            except AppError as err:
                raise notice(err) from None
    else:
        def run(*args):
            try:
                return fn(*args)
            except AppError as err:
                raise notice(err) from None
    run.__name__ = fn.__name__
    return run


def build(studio: Studio):
    """The Gradio Blocks of ``studio`` (not launched)."""
    import gradio as gr

    cfg, gen = studio.cfg, studio.cfg.generation
    ed = cfg.edit_settings()

    def generate(audio, prompt, seeds, steps, guidance, beta, layer_betas, gain_db, audio_b, alpha, progress):
        results = studio.generate(audio, prompt, seeds, steps, guidance, beta, layer_betas, gain_db, audio_b, alpha,
                                  progress=progress)
        gallery = [(str(r.path), r.caption) for r in results]
        settings = "\n\n".join(r.caption for r in results)
        return gallery, settings, [str(r.path) for r in results]

    def edit(image, audio, prompt, f_t, attn_t, steps, guidance, beta, layer_betas, gain_db, progress):
        r = studio.edit(image, audio, prompt, f_t, attn_t, steps, guidance, beta, layer_betas, gain_db,
                        progress=progress)
        return str(r.path), r.caption, str(r.path)

    def preview(image):
        return read_image(image) if image else None

    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f"# {TITLE}\n{ABOUT}")
        with gr.Row():
            weights = gr.Textbox(studio.weights or "", label="Weights folder", scale=4, elem_id="weights")
            load_button = gr.Button("Load", scale=1, elem_id="load")
        status = gr.Markdown(studio.status(), elem_id="status")
        load_button.click(_in_page(studio.load), weights, status)

        with gr.Tab("Generate", elem_id="tab-generate"):
            with gr.Row():
                with gr.Column():
                    g_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", format=None, label="Audio",
                                       elem_id="gen-audio")
                    g_prompt = gr.Textbox(label="Text prompt (optional)", placeholder="e.g. a photo of a beach",
                                          elem_id="gen-prompt")
                    g_seeds = gr.Textbox("0", label="Seeds", info="one per image: 0 · 0, 1, 2 · 0-3",
                                         elem_id="gen-seeds")
                    # the evaluation's scale (the demo's measured 3; the paper profile's 8), as Table 1 generates
                    g_guidance = gr.Slider(1.0, 20.0, value=cfg.eval_settings().guidance_scale, step=0.5,
                                           label="Guidance scale")
                    g_steps = gr.Slider(1, 100, value=gen.steps, step=1, label="DDIM steps")
                    g_beta = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Audio strength β (every layer)")
                    with gr.Accordion("Advanced", open=False):
                        g_layers = gr.Textbox(label="Per-layer β", placeholder="up3=0.5, mid=1.2",
                                              info="LAYER=VALUE pairs over the global β; layers: "
                                                   + (", ".join(studio.layers) or "(load weights)"))
                        g_gain = gr.Slider(-24.0, 24.0, value=0.0, step=1.0, label="Gain (dB)",
                                           info="waveform gain before CLAP (paper Fig. 10b)")
                        g_audio_b = gr.Audio(sources=["upload", "microphone"], type="filepath", format=None,
                                             label="Second audio (optional)")
                        g_alpha = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Interpolation α",
                                            info="0 = the first audio, 1 = the second (paper Fig. 10a)")
                    g_button = gr.Button("Generate", variant="primary", elem_id="gen-button")
                with gr.Column():
                    g_gallery = gr.Gallery(label="Images", columns=2, elem_id="gen-gallery")
                    g_settings = gr.Markdown(elem_id="gen-settings")
                    g_files = gr.File(label="Download", file_count="multiple", elem_id="gen-files")
            g_button.click(_in_page(generate, progress=True),
                           [g_audio, g_prompt, g_seeds, g_steps, g_guidance, g_beta, g_layers, g_gain, g_audio_b,
                            g_alpha], [g_gallery, g_settings, g_files])

        with gr.Tab("Edit", elem_id="tab-edit"):
            with gr.Row():
                with gr.Column():
                    # a file field, not gr.Image: gr.Image decodes an upload before any handler runs, so an
                    # unreadable file would end in Gradio's own error instead of ours
                    with gr.Row():
                        e_image = gr.File(file_types=["image"], type="filepath", label="Image to edit",
                                          elem_id="edit-image")
                        e_preview = gr.Image(label="Source", interactive=False, height=200, elem_id="edit-preview")
                    e_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", format=None, label="Audio",
                                       elem_id="edit-audio")
                    e_prompt = gr.Textbox(label="Text prompt (optional)")
                    e_ft = gr.Slider(0.0, 1.0, value=ed.f_t, step=0.05, label="f_t",
                                     info="fraction of steps with residual-feature injection (structure)")
                    e_attn = gr.Slider(0.0, 1.0, value=ed.attn_t, step=0.05, label="attn_t",
                                       info="fraction of steps with self-attention injection")
                    e_steps = gr.Slider(1, 100, value=ed.steps, step=1, label="DDIM steps",
                                        info="the inversion of an image is computed once per step count")
                    e_guidance = gr.Slider(1.0, 20.0, value=ed.guidance_scale, step=0.5, label="Guidance scale")
                    e_beta = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Audio strength β (every layer)")
                    with gr.Accordion("Advanced", open=False):
                        e_layers = gr.Textbox(label="Per-layer β", placeholder="up3=0.5, mid=1.2")
                        e_gain = gr.Slider(-24.0, 24.0, value=0.0, step=1.0, label="Gain (dB)")
                    e_button = gr.Button("Edit", variant="primary", elem_id="edit-button")
                with gr.Column():
                    e_out = gr.Image(label="Edited", type="filepath", interactive=False, height=420,
                                     elem_id="edit-out")
                    e_settings = gr.Markdown(elem_id="edit-settings")
                    e_file = gr.File(label="Download", elem_id="edit-file")
            e_image.change(_in_page(preview), e_image, e_preview)
            e_button.click(_in_page(edit, progress=True),
                           [e_image, e_audio, e_prompt, e_ft, e_attn, e_steps, e_guidance, e_beta, e_layers, e_gain],
                           [e_out, e_settings, e_file])
    return page


def launch(page, allowed: str, host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> None:
    """Serve ``page`` (no public share link) with its images from ``allowed``; ``block``: until interrupted."""
    page.queue().launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                        quiet=not block, prevent_thread_lock=not block, allowed_paths=[allowed], css=CSS)
