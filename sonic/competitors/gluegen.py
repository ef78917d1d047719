"""GlueGen (Qin et al., "GlueGen: Plug and Play Multi-modal Encoders for X-to-image Generation", ICCV 2023),
adapted to audio on our stack (docs/competitors.md): the same CLAP embeddings and the
same frozen SD as SonicDiffusion, trained with the objective of the authors' sound script
(``sound-gluenet/train_gluenet_sound_text.py`` of salesforce/GlueGen; "train" below, "model" =
``sound-gluenet/model.py``).

A translator maps the CLAP embedding to 77 x C tokens in the SD text encoder's *output* space; SD generates from
them as its text condition. It is aligned in feature space, with no diffusion loss:

    T = E_text(prompt) / s                   targets, normalised per token (s = per-token norm / target_norm)
    L = align_weight * mean(w * (y - T)^2)                       y = translator's tokens in the normalised space
      + recon_weight * MSE(reverse(y), a~)                       a~ = the standardised CLAP embedding
      + adversarial_weight * (NLL(D(GRL(T)), text) + NLL(D(GRL(y)), audio))

and SD is conditioned on ``y * s``. The pieces, each a setting of :class:`GlueGenSettings` whose default is the
original's:

* **Prompts** (``templates``, ``synonyms``): each step draws, per clip, one of the templates (the original's six,
  its duplicate "a vivid photo of {}" kept, so that one is drawn twice as often; train L44-51; it always templates:
  ``random.random() < 1`` in L154) and one phrase of the clip's label (train L119-129, L153: the original's table
  for UrbanSound8K classes, a uniform choice). Ours is :data:`SYNONYMS`, a small table for our datasets' labels
  (Landscape classes, Greatest Hits materials, RAVDESS emotions, Into-the-Wild tags); a label missing from the
  table is its own single phrase (the original raises a ``KeyError``), and a combined Into-the-Wild label
  ("forest+rain") takes the combinations of its tags' phrases (:func:`label_phrases`; the original has no
  multi-label classes). ``synonyms`` in the config replaces the whole table (``{}``: no synonyms);
  ``template: "..."`` (older configs) is ``templates: ["..."]``. Draws come from the step's generator
  (:func:`sonic.training.loop.step_generator`), not Python's global ``random``, so a run is reproducible and a
  resume continues it exactly. The distinct prompts are encoded once up front (the original encodes each
  batch; the frozen encoder gives the same states).
* **Target normalisation** (``target_norm``): targets are divided by half the per-token norm (train L164,
  ``feat_src_ / (tensor_norm/2)``), the translator is trained in that space and its output is multiplied back
  for SD (``stable-diffusion/ldm/modules/encoders/modules.py`` L341). The original's ``tensor_norm`` is a fixed
  vector for CLIP ViT-L/14 (train L115; where it was measured is not stated); ours is measured on the targets
  training draws (the per-position mean L2 norm, weighted as the prompts are drawn), so it fits any text
  encoder, and is saved with the weights (``translator.token_scale``). ``None`` switches it off (s = 1).
* **Per-token importance** (``importance_weights``): the alignment MSE of token k is weighted by how far the batch's
  mean state at k lies from the mean state at the last position (a padding position), mean-normalised, the last
  weight replaced by the mean of the two before it (train L181-185, :func:`token_importance`). As the original,
  computed per batch from the *raw* (un-normalised) states, with no gradient.
* **Adversary** (``adversarial_weight``, ``reversal_lambda``): a token-wise discriminator (model L37-53:
  Linear(C, C/4) -> BatchNorm -> ReLU -> Linear(C/4, 2), log-softmax + NLL) tells real normalised text tokens
  (class 0) from translated ones (class 1), every one of the B x 77 tokens a sample (train L173-179); both inputs
  pass a gradient-reversal layer with lambda 0.1 (model L23-35, L50-52), so one optimiser step trains the
  discriminator and pushes the translator to fool it. Weight 0.1 on the sum of both NLLs (train L187); the
  discriminator shares the translators' optimiser (train L101-106). It is training-only: checkpoints carry it for
  resume, ``weights`` do not. The original's DANN schedule ``alpha`` is computed and only printed (train L205-206),
  so lambda is fixed here too. Its BatchNorm normalises with batch statistics only (``track_running_stats=False``):
  the original never runs the discriminator in eval mode, so running statistics would be state without a use.
  ``adversarial_weight: 0`` builds no discriminator.
* **Loss weights**: align 1e4 as the original (train L189; it pairs with the normalised targets, whose elements are
  ~2/sqrt(C)). The original's reconstruction is 1e4 x MSE against the raw AudioCLIP embedding, unit-norm and
  1024-d, i.e. elements of mean square 1/1024 (train L190); our reverse translator reconstructs the *standardised*
  CLAP embedding (elements of unit scale), so the same term is ``recon_weight = 1e4 / 1024``.

``losses.csv`` logs ``align`` and ``recon`` (the terms before their weights), ``adv`` (the discriminator's NLL sum)
when the adversary is on, and ``align_text`` (the plain MSE of ``y * s`` against the text states, the original's
printed ``loss_distill_rec`` / 10, train L192) when normalisation or importance weights change ``align``.
With ``templates: ["a photo of {}"]``, ``synonyms: {}``, ``target_norm: null``, ``importance_weights: false``,
``adversarial_weight: 0`` the loss is the plain ``align_weight * MSE + recon_weight * MSE`` of the simpler
GlueGen this module started as.

What differs from the original, beyond the above: its translator (``Translator_w_head_v0``, an MLP-mixer over the
AudioCLIP embedding reshaped to 16 x 64 tokens) and its optimiser (Adam, StepLR halving every 5 epochs, no
clipping). Ours: standardise -> Linear(d_a -> h) broadcast over K learned positions (CLAP gives one vector per
clip) -> pre-norm Transformer encoder -> LayerNorm -> Linear(h -> C) + a per-token offset that starts at the mean
normalised target; AdamW with the loop's constant lr and gradient clipping, the same as every method here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sonic.competitors.common import InputStats, TextConditionedGenerator, load_modules, save_modules
from sonic.models.io import read_config
from sonic.models.text import encode_prompts
from sonic.settings import GlueGenSettings
from sonic.training import loop
from sonic.training.data import ClipSet

log = logging.getLogger(__name__)

FORMAT = "sonic-gluegen"

# ---- prompts ------------------------------------------------------------------------------------------------------
def label_phrases(label: str, synonyms: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The phrases a label's prompts use: its table entry; for a combined Into-the-Wild label ("forest+rain") with
    no entry of its own but a part in the table, every combination of its parts' phrases joined by " and " (a part
    missing from the table stands for itself); otherwise the label itself."""
    if label in synonyms:
        return tuple(synonyms[label])
    parts = label.split("+")
    if len(parts) > 1 and any(p in synonyms for p in parts):
        return tuple(" and ".join(c) for c in product(*(tuple(synonyms.get(p, (p,))) for p in parts)))
    return (label,)


class LabelPrompts:
    """The templated, synonym-augmented prompts of a set of labels: the distinct ``prompts`` (whose text states
    training encodes once), the draw of one prompt per clip and step, and how often each prompt is drawn."""

    def __init__(self, labels: Sequence[str], templates: Sequence[str], synonyms: Mapping[str, Sequence[str]]):
        self.templates = tuple(templates)
        self.phrases = {lab: label_phrases(lab, synonyms) for lab in sorted(set(labels))}
        self.prompts = sorted({t.format(p) for ph in self.phrases.values() for t in self.templates for p in ph})
        self.row = {prompt: i for i, prompt in enumerate(self.prompts)}

    def sample(self, labels: Sequence[str], generator: torch.Generator) -> list[str]:
        """One prompt per label: a uniform template and a uniform phrase of the label, drawn from ``generator``."""
        t = torch.randint(len(self.templates), (len(labels),), generator=generator).tolist()
        u = torch.rand(len(labels), generator=generator).tolist()
        out = []
        for lab, ti, ui in zip(labels, t, u):
            ph = self.phrases[lab]
            out.append(self.templates[ti].format(ph[min(int(ui * len(ph)), len(ph) - 1)]))
        return out

    def frequencies(self, labels: Sequence[str]) -> torch.Tensor:
        """(P,) the probability that a draw for a uniformly chosen entry of ``labels`` is each prompt."""
        freq = torch.zeros(len(self.prompts), dtype=torch.float64)
        for lab in labels:
            ph = self.phrases[lab]
            for t in self.templates:
                for p in ph:
                    freq[self.row[t.format(p)]] += 1.0 / (len(self.templates) * len(ph))
        return freq / len(labels)


def target_scale(states: torch.Tensor, freq: torch.Tensor, target_norm: float | None) -> torch.Tensor:
    """(K, 1) per-token divisor of the targets: the mean L2 norm of each position's state over the prompts
    (``states`` (P, K, C), weighted by ``freq`` (P,)) over ``target_norm``, so a normalised target token has norm
    ~``target_norm`` (the original's ``tensor_norm / 2``); ones when ``target_norm`` is None."""
    if target_norm is None:
        return torch.ones(states.shape[1], 1)
    norms = states.double().norm(dim=-1)  # (P, K)
    return ((freq.double()[:, None] * norms).sum(0) / freq.double().sum() / target_norm)[:, None].float()


# ---- the translators ----------------------------------------------------------------------------------------------
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
    """CLAP embedding (B, d_a) -> text-encoder-space tokens (B, K, C); :meth:`normalised` gives them before the
    per-token ``token_scale`` (K, 1) (a buffer saved with the weights; ones without target normalisation)."""

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
        self.register_buffer("token_scale", torch.ones(c.num_tokens, 1))

    @torch.no_grad()
    def init_output(self, mean_states: torch.Tensor, token_scale: torch.Tensor | None = None) -> None:
        """Set the per-token scale (K, 1) and start from the mean normalised target (K, C)."""
        if token_scale is not None:
            self.token_scale.copy_(token_scale)
        self.offset.copy_(mean_states)

    def normalised(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        x = self.proj_in(self.stats(audio_embeds))[:, None, :] + self.positions  # (B, K, h)
        return self.proj_out(self.norm_out(self.encoder(x))) + self.offset  # (B, K, C)

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        return self.normalised(audio_embeds) * self.token_scale  # (B, K, C)


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
    """Both directions: clap (B, d_a) -> (normalised tokens (B, K, C), their reconstruction (B, d_a), the
    standardised input (B, d_a)). The reverse translator reads the normalised tokens, as the original's."""

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.translator = Translator(config)
        self.reverse = ReverseTranslator(config)

    def forward(self, audio_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self.translator.normalised(audio_embeds)
        return tokens, self.reverse(tokens), self.translator.stats(audio_embeds)


# ---- the adversary (training only) --------------------------------------------------------------------------------
class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambd * grad, None


def reverse_gradient(x: torch.Tensor, lambd: float) -> torch.Tensor:
    """The identity forward; backward multiplies the gradient by ``-lambd`` (Ganin & Lempitsky 2015)."""
    return _GradientReversal.apply(x, lambd)


class TokenDiscriminator(nn.Module):
    """Tokens (N, C) -> logits (N, 2) of (text, translated): Linear(C, C/4) -> BatchNorm -> ReLU -> Linear."""

    def __init__(self, token_dim: int, mult: float = 0.25):
        super().__init__()
        inner = max(1, int(token_dim * mult))
        self.net = nn.Sequential(nn.Linear(token_dim, inner), nn.BatchNorm1d(inner, track_running_stats=False),
                                 nn.ReLU(), nn.Linear(inner, 2))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens)


def adversarial_loss(discriminator: TokenDiscriminator, real: torch.Tensor, fake: torch.Tensor,
                     reversal_lambda: float) -> torch.Tensor:
    """NLL of the discriminator on every real text token (class 0) plus on every translated token (class 1), both
    (B, K, C) taken token-wise and each batch through its own BatchNorm pass, after the gradient reversal."""
    real, fake = real.flatten(0, 1).float(), fake.flatten(0, 1).float()  # (B*K, C)
    logits_real = discriminator(reverse_gradient(real, reversal_lambda))
    logits_fake = discriminator(reverse_gradient(fake, reversal_lambda))
    zeros = torch.zeros(len(real), dtype=torch.long, device=real.device)
    return F.cross_entropy(logits_real, zeros) + F.cross_entropy(logits_fake, torch.ones_like(zeros))


# ---- the loss -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def token_importance(states: torch.Tensor) -> torch.Tensor:
    """(1, K, 1) weights from a batch of raw text states (B, K, C): the mean over channels of
    |mean_b states[:, k] - mean_b states[:, -1]|, divided by its mean over k, the last weight (0 by construction)
    set to the mean of the two before it (train L181-185)."""
    if states.shape[1] < 3:
        raise ValueError(f"token importance needs at least 3 tokens, got {states.shape[1]}")
    mean = states.float().mean(0)  # (K, C)
    w = (mean - mean[-1]).abs().mean(1)  # (K,)
    w = w / w.mean().clamp_min(torch.finfo(w.dtype).tiny)
    w[-1] = (w[-2] + w[-3]) / 2
    return w[None, :, None]


def gluegen_loss(tokens: torch.Tensor, targets: torch.Tensor, recon: torch.Tensor, source: torch.Tensor,
                 align_weight: float = 1.0, recon_weight: float = 1.0, token_weights: torch.Tensor | None = None,
                 adversarial: torch.Tensor | None = None, adversarial_weight: float = 0.0
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """align_weight * mean(token_weights * (tokens - targets)^2) + recon_weight * MSE(recon, source)
    [+ adversarial_weight * adversarial], and the parts for ``losses.csv`` (before their weights)."""
    if token_weights is None:
        align = F.mse_loss(tokens.float(), targets.float())
    else:
        align = (F.mse_loss(tokens.float(), targets.float(), reduction="none") * token_weights).mean()
    recon_err = F.mse_loss(recon.float(), source.float())
    loss = align_weight * align + recon_weight * recon_err
    parts = {"align": float(align.detach()), "recon": float(recon_err.detach())}
    if adversarial is not None:
        loss = loss + adversarial_weight * adversarial
        parts["adv"] = float(adversarial.detach())
    return loss, parts


class GlueGenTraining(nn.Module):
    """What trains: the translators and, with the adversary on, the discriminator. ``forward(clap (B, d_a), raw
    text states (B, K, C))`` is the loss of one batch and its parts; only ``model`` is saved as weights."""

    def __init__(self, model: GlueGenModel, settings: GlueGenSettings):
        super().__init__()
        self.model, self.settings = model, settings
        on = settings.adversarial_weight > 0
        self.discriminator = TokenDiscriminator(model.translator.config.token_dim) if on else None

    def forward(self, audio_embeds: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.settings
        tokens, recon, source = self.model(audio_embeds)
        scale = self.model.translator.token_scale  # (K, 1)
        targets = states.float() / scale
        weights = token_importance(states) if s.importance_weights else None
        adv = (None if self.discriminator is None
               else adversarial_loss(self.discriminator, targets, tokens, s.reversal_lambda))
        loss, parts = gluegen_loss(tokens, targets, recon, source, s.align_weight, s.recon_weight, weights, adv,
                                   s.adversarial_weight)
        if s.target_norm is not None or s.importance_weights:
            parts["align_text"] = float(F.mse_loss((tokens.float() * scale).detach(), states.float()))
        return loss, parts


# ---- training -----------------------------------------------------------------------------------------------------
def train_gluegen(text_encoder, tokenizer, clips: ClipSet, settings: GlueGenSettings,
                  loop_settings: loop.LoopSettings, out_dir: str | Path, run_id: str = "", **metadata) -> dict:
    """Train translator, reverse translator (and discriminator) against the frozen SD text encoder; writes
    ``<out_dir>/weights`` (both directions; generation uses the translator), ``losses.csv``, ``loss.png``,
    ``summary.json``."""
    s, out = settings, Path(out_dir)
    if not clips.labelled:
        raise ValueError("GlueGen is trained on prompts made of the clips' labels, and this dataset has none (its "
                         "videos sit directly under the root); the workflow leaves it out of such datasets' Table 1")
    prompts = LabelPrompts(clips.labels, s.templates, s.synonyms)
    states = encode_prompts(text_encoder.requires_grad_(False).eval(), tokenizer, prompts.prompts).float().cpu()
    freq = prompts.frequencies(clips.labels)  # (P,)
    scale = target_scale(states, freq, s.target_norm)  # (K, 1)
    mean_target = (freq[:, None, None] * states.double()).sum(0).float() / scale  # (K, C)
    config = TranslatorConfig(clips.clap.shape[1], states.shape[2], states.shape[1], s.hidden_dim, s.num_layers,
                              s.num_heads)
    torch.manual_seed(loop_settings.seed)
    model = GlueGenModel(config)
    model.translator.stats.fit(clips.clap)
    model.translator.init_output(mean_target, scale)
    training = GlueGenTraining(model, s)
    optimizer = torch.optim.AdamW(training.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def step(m, gen, _step):
        idx = torch.randint(len(clips), (s.batch_size,), generator=gen)
        drawn = prompts.sample([clips.labels[i] for i in idx.tolist()], gen)
        device = next(m.parameters()).device
        return m(clips.clap[idx].to(device), states[[prompts.row[p] for p in drawn]].to(device))

    summary = loop.run(out, training, optimizer, scheduler, step, loop_settings, desc="gluegen", run_id=run_id)
    if not loop.is_main_process():
        return summary
    save_gluegen(out / "weights", model, s, prompts, method="gluegen", steps=s.steps, **metadata)
    disc = training.discriminator
    summary.update({"method": "gluegen", "clips": len(clips), "classes": len(set(clips.labels)),
                    "prompts": len(prompts.prompts),
                    "trainable_parameters": sum(p.numel() for p in training.parameters()),
                    "discriminator_parameters": 0 if disc is None else sum(p.numel() for p in disc.parameters()),
                    "settings": asdict(s)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("gluegen: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "weights")
    return summary


# ---- weights ------------------------------------------------------------------------------------------------------
def save_gluegen(path: str | Path, model: GlueGenModel, settings: GlueGenSettings, prompts: LabelPrompts,
                 **metadata) -> Path:
    """Translator and reverse translator (no discriminator), with the prompts they were aligned to."""
    config = {"translator": model.translator.config.to_dict(), "target_norm": settings.target_norm,
              "templates": list(prompts.templates), "phrases": {k: list(v) for k, v in prompts.phrases.items()}}
    return save_modules(path, FORMAT, {"translator": model.translator, "reverse": model.reverse}, config,
                        **metadata)


def load_gluegen(path: str | Path) -> tuple[GlueGenModel, dict]:
    """Both directions (loaded strictly) and the saved config."""
    config = read_config(path, FORMAT, "GlueGen weights")["config"]
    if "target_norm" not in config:
        raise ValueError(f"{path}: GlueGen weights from before target normalisation (no translator.token_scale); "
                         "retrain them")
    model = GlueGenModel(TranslatorConfig(**config["translator"]))
    load_modules(path, {"translator": model.translator, "reverse": model.reverse})
    return model.eval(), config


# ---- generation ---------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class GlueGenGenerator(TextConditionedGenerator):
    """SD conditioned on the translated tokens alone; a text prompt is not supported (the tokens *are* the
    text condition)."""

    translator: Translator

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
        return cls.from_sd(sd, translator=model.translator.to(param.device, param.dtype))
