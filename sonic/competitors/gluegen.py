"""GlueGen (Qin et al., "GlueGen: Plug and Play Multi-modal Encoders for X-to-image Generation", ICCV 2023),
adapted to audio on our stack (SPEC §5): the same CLAP embeddings and the same frozen SD as SonicDiffusion.

A translator maps the CLAP embedding to 77 x C tokens in the SD text encoder's *output* space; SD generates from
them as its text condition. It is aligned in feature space, with no diffusion loss:

    L = align_weight * MSE(translator(a), E_text(label prompt))  +  recon_weight * MSE(reverse(translator(a)), a~)

where ``E_text`` is the frozen SD text encoder's last hidden state (all 77 positions, padding included, since SD
attends to all of them) of the clip's class label put in ``template`` ("a photo of {}" by default, the same
template as AudioToken's prompt), ``reverse`` a reverse translator back to the audio space and ``a~`` the
standardised CLAP embedding (the translator's own input, so the reconstruction term is on the unit scale).

Our translator: standardise -> Linear(d_a -> h) broadcast over K learned positions -> pre-norm Transformer
encoder -> LayerNorm -> Linear(h -> C) + a per-token offset that starts at the mean target (the label prompts
share most of their states, e.g. the begin-of-text state, so the translator learns the class-dependent part).
GlueGen's own translator maps a *sequence* of source-encoder tokens; CLAP gives one vector per clip, hence the
broadcast over learned positions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sonic.competitors.common import InputStats, TextConditionedGenerator, load_modules, save_modules
from sonic.models.io import read_config
from sonic.models.text import encode_prompts
from sonic.training import loop
from sonic.training.data import ClipSet

log = logging.getLogger(__name__)

FORMAT = "sonic-gluegen"


@dataclass(frozen=True)
class GlueGenSettings:
    """``competitors.gluegen.*``; defaults = the demo SonicDiffusion stage-2 budget (steps, batch, lr, wd)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    template: str = "a photo of {}"  # label prompt whose text-encoder states are the targets
    align_weight: float = 1.0
    recon_weight: float = 1.0
    hidden_dim: int = 256
    num_layers: int = 2
    num_heads: int = 4

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.hidden_dim, self.num_layers, self.num_heads) < 1:
            raise ValueError("gluegen.steps, batch_size, hidden_dim, num_layers and num_heads must be >= 1")
        if self.align_weight < 0 or self.recon_weight < 0 or not (self.align_weight or self.recon_weight):
            raise ValueError("gluegen: align_weight and recon_weight must be >= 0 and not both 0")
        if self.template.count("{}") != 1:
            raise ValueError(f"gluegen.template must contain one '{{}}', got {self.template!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"gluegen.hidden_dim ({self.hidden_dim}) must be divisible by num_heads "
                             f"({self.num_heads})")


@dataclass(frozen=True)
class TranslatorConfig:
    audio_dim: int
    token_dim: int  # C, the text encoder's hidden size
    num_tokens: int = 77  # the text encoder's sequence length
    hidden_dim: int = 256
    num_layers: int = 2
    num_heads: int = 4

    def to_dict(self) -> dict:
        return asdict(self)


class Translator(nn.Module):
    """CLAP embedding (B, d_a) -> text-encoder-space tokens (B, K, C)."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = c = config
        self.stats = InputStats(c.audio_dim)
        self.proj_in = nn.Linear(c.audio_dim, c.hidden_dim)
        self.positions = nn.Parameter(torch.randn(c.num_tokens, c.hidden_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(c.hidden_dim, c.num_heads, 4 * c.hidden_dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(c.hidden_dim)
        self.proj_out = nn.Linear(c.hidden_dim, c.token_dim)
        self.offset = nn.Parameter(torch.zeros(c.num_tokens, c.token_dim))

    @torch.no_grad()
    def init_output(self, mean_states: torch.Tensor) -> None:
        """Start from the mean target (K, C)."""
        self.offset.copy_(mean_states)

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(self.stats(audio_embeds))[:, None, :] + self.positions  # (B, K, h)
        return self.proj_out(self.norm_out(self.encoder(x))) + self.offset  # (B, K, C)


class ReverseTranslator(nn.Module):
    """Tokens (B, K, C) -> the standardised CLAP embedding (B, d_a): per-token MLP, mean over tokens, Linear."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        c = config
        self.token_mlp = nn.Sequential(nn.LayerNorm(c.token_dim), nn.Linear(c.token_dim, c.hidden_dim), nn.GELU())
        self.proj_out = nn.Linear(c.hidden_dim, c.audio_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj_out(self.token_mlp(tokens).mean(1))  # (B, d_a)


class GlueGenModel(nn.Module):
    """Both directions: clap (B, d_a) -> (tokens (B, K, C), reconstruction (B, d_a), standardised input (B, d_a))."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.translator = Translator(config)
        self.reverse = ReverseTranslator(config)

    def forward(self, audio_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self.translator(audio_embeds)
        return tokens, self.reverse(tokens), self.translator.stats(audio_embeds)


def gluegen_loss(tokens: torch.Tensor, targets: torch.Tensor, recon: torch.Tensor, source: torch.Tensor,
                 align_weight: float = 1.0, recon_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """align_weight * MSE(tokens, targets) + recon_weight * MSE(recon, source), and the parts for ``losses.csv``."""
    align = F.mse_loss(tokens.float(), targets.float())
    recon_err = F.mse_loss(recon.float(), source.float())
    return (align_weight * align + recon_weight * recon_err,
            {"align": float(align.detach()), "recon": float(recon_err.detach())})


@torch.no_grad()
def label_states(text_encoder, tokenizer, labels: list[str], template: str) -> torch.Tensor:
    """(N, 77, C) targets: the text-encoder states of each clip's label prompt, one pass per distinct label."""
    distinct = sorted(set(labels))
    states = encode_prompts(text_encoder, tokenizer, [template.format(lab) for lab in distinct]).float().cpu()
    row = {lab: i for i, lab in enumerate(distinct)}
    return states[torch.tensor([row[lab] for lab in labels])]


def train_gluegen(text_encoder, tokenizer, clips: ClipSet, settings: GlueGenSettings,
                  loop_settings: loop.LoopSettings, out_dir: str | Path, run_id: str = "", **metadata) -> dict:
    """Train translator and reverse translator against the frozen SD text encoder; writes ``<out_dir>/weights``
    (both directions; generation uses the translator), ``losses.csv``, ``loss.png``, ``summary.json``."""
    s, out = settings, Path(out_dir)
    targets = label_states(text_encoder.requires_grad_(False).eval(), tokenizer, clips.labels, s.template)
    config = TranslatorConfig(clips.clap.shape[1], targets.shape[2], targets.shape[1], s.hidden_dim, s.num_layers,
                              s.num_heads)
    torch.manual_seed(loop_settings.seed)
    model = GlueGenModel(config)
    model.translator.stats.fit(clips.clap)
    model.translator.init_output(targets.mean(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def step(m, gen, _step):
        idx = torch.randint(len(clips), (s.batch_size,), generator=gen)
        device = next(m.parameters()).device
        tokens, recon, source = m(clips.clap[idx].to(device))
        return gluegen_loss(tokens, targets[idx].to(device), recon, source, s.align_weight, s.recon_weight)

    summary = loop.run(out, model, optimizer, scheduler, step, loop_settings, desc="gluegen", run_id=run_id)
    save_gluegen(out / "weights", model, s.template, method="gluegen", steps=s.steps, **metadata)
    summary.update({"method": "gluegen", "clips": len(clips), "classes": len(set(clips.labels)),
                    "trainable_parameters": sum(p.numel() for p in model.parameters()), "settings": asdict(s)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("gluegen: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "weights")
    return summary


# ---- weights ------------------------------------------------------------------------------------------------------
def save_gluegen(path: str | Path, model: GlueGenModel, template: str, **metadata) -> Path:
    config = {"translator": model.translator.config.to_dict(), "template": template}
    return save_modules(path, FORMAT, {"translator": model.translator, "reverse": model.reverse}, config,
                        **metadata)


def load_gluegen(path: str | Path) -> tuple[GlueGenModel, dict]:
    """Both directions (loaded strictly) and the saved config."""
    config = read_config(path, FORMAT, "GlueGen weights")["config"]
    model = GlueGenModel(TranslatorConfig(**config["translator"]))
    load_modules(path, {"translator": model.translator, "reverse": model.reverse})
    return model.eval(), config


# ---- generation ---------------------------------------------------------------------------------------------------
class GlueGenGenerator(TextConditionedGenerator):
    """SD conditioned on the translated tokens alone; a text prompt is not supported (the tokens *are* the
    text condition)."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, translator: Translator):
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler)
        self.translator = translator

    @torch.no_grad()
    def conditions(self, audio_embeds: torch.Tensor, prompt: str | None) -> torch.Tensor:
        if prompt:
            raise ValueError("GlueGen generates from the translated audio tokens alone; it takes no text prompt")
        p = next(self.translator.parameters())
        return self.translator(audio_embeds.to(p.device, p.dtype))

    @classmethod
    def from_weights(cls, sd, path: str | Path) -> GlueGenGenerator:
        model, _ = load_gluegen(path)
        param = next(sd.unet.parameters())
        translator = model.translator.to(param.device, param.dtype)
        return cls(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, translator)
