"""SonicDiffusion: audio-driven image generation and editing with a frozen Stable Diffusion."""

__version__ = "0.1.0"
