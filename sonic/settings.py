"""The settings of every trained thing: each training stage, each competitor and each miniature pretrained model of
the demo, one frozen dataclass each, with its defaults and its value checks. This module is the one place of those
defaults; ``sonic.config`` holds them as the typed fields ``training.stage1``, ``training.stage2``,
``competitors.<method>`` and ``pretrain.<model>``, and the modules that train with them import them from here.

Pure Python (no torch), at the bottom of the package's layers, so the config contract can type every section
without importing the code that trains (docs/development.md#what-is-here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TypeVar

T = TypeVar("T")


def for_run(settings: T, seed: int, steps: int | None = None) -> T:
    """``settings`` with the run's ``seed`` (where it has a seed field: the top-level seed) and, where given,
    ``steps``."""
    if "seed" in {f.name for f in fields(settings)}:
        settings = replace(settings, seed=seed)
    return settings if steps is None else replace(settings, steps=steps)


# ---- the two stages of SonicDiffusion (training.stage1, training.stage2) ----------------------------------------
@dataclass(frozen=True)
class Stage1Settings:
    steps: int = 1000
    batch_size: int = 6
    lr: float = 1e-4
    weight_decay: float = 1e-2
    negatives: int = 128  # N; capped by the dataset (ContrastiveSampler)
    temperature: float = 0.1  # tau of InfoNCE (not given in the paper)
    alpha_contrastive: float = 1.0  # alpha1; 0 = the no_contrastive ablation
    alpha_mse: float = 0.25  # alpha2; 0 = the no_mse ablation
    token_t: float = 5.0  # t of the reverse-sigmoid token weights
    mse_reduction: str = "mean"  # per channel (nn.MSELoss); "sum": the literal ||.||^2 of Eq. 4 (docs/training.md)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("stage1.steps and stage1.batch_size must be >= 1")
        if self.alpha_contrastive < 0 or self.alpha_mse < 0 or not (self.alpha_contrastive or self.alpha_mse):
            raise ValueError("stage1: alpha_contrastive and alpha_mse must be >= 0 and not both 0")


@dataclass(frozen=True)
class Stage2Settings:
    steps: int = 1000
    batch_size: int = 6
    lr_adapters: float = 1e-4
    lr_projector: float = 1e-5
    lr_gates: float | None = None  # the gates' gamma; None = lr_adapters (the paper has one rate)
    weight_decay: float = 1e-2
    null_audio_prob: float = 0.1
    resolution: int | None = None  # training crop side in pixels; None = generation.resolution
    resize_scale: float = 1.0  # frames are resized to shorter side resolution * resize_scale, then cropped
    train_projector: bool = True  # False = the projector_frozen_stage2 ablation
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("stage2.steps and stage2.batch_size must be >= 1")
        if not 0.0 <= self.null_audio_prob <= 1.0:
            raise ValueError(f"stage2.null_audio_prob must be in [0, 1], got {self.null_audio_prob}")
        if self.resize_scale < 1.0:
            raise ValueError(f"stage2.resize_scale must be >= 1, got {self.resize_scale}")


# ---- the trained competitors (competitors.audiotoken, competitors.gluegen; sonic/competitors/) ------------------
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")


@dataclass(frozen=True)
class AudioTokenSettings:
    """``competitors.audiotoken.*``; defaults = the demo SonicDiffusion stage-2 budget (steps, batch, lr, wd,
    augmentation)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    hidden_dim: int = 512  # embedder MLP width
    l1_weight: float = 0.01  # the token regulariser of the paper
    template: str = "a photo of {}"
    placeholder: str = "*"  # an existing word that the tokenizer keeps as one token
    resolution: int | None = None  # None = generation.resolution
    resize_scale: float = 1.125
    gradient_checkpointing: bool = False
    lora_rank: int = 4  # LoRA on the UNet's attention (the original's rank); 0 = the embedder alone
    lr_scale_by_batch: bool = False  # lr x batch_size (the original's --scale_lr)
    lr_scheduler: str = "constant"  # diffusers.optimization.get_scheduler name
    lr_warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.lora_rank < 0 or self.lr_warmup_steps < 0:
            raise ValueError("audiotoken.lora_rank and lr_warmup_steps must be >= 0")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"audiotoken.lr_scheduler must be one of {LR_SCHEDULERS}, got {self.lr_scheduler!r}")
        if self.steps < 1 or self.batch_size < 1 or self.hidden_dim < 1:
            raise ValueError("audiotoken.steps, batch_size and hidden_dim must be >= 1")
        if self.l1_weight < 0:
            raise ValueError(f"audiotoken.l1_weight must be >= 0, got {self.l1_weight}")
        if self.template.count("{}") != 1:
            raise ValueError(f"audiotoken.template must contain one '{{}}', got {self.template!r}")
        if self.resize_scale < 1.0:
            raise ValueError(f"audiotoken.resize_scale must be >= 1, got {self.resize_scale}")


# The original's image templates (train L44-51), in its order, its duplicate included.
TEMPLATES = ("a vivid photo of {}", "a vivid rendering of {}", "the vivid photo of {}", "a vivid photo of {}",
             "a good photo of {}", "a vivid illustration of {}")


# Phrases per label, the label (in words) first, as the original's table lists the class name among its phrases.
SYNONYMS: dict[str, tuple[str, ...]] = {
    # Landscape classes
    "explosion": ("explosion", "a blast", "a detonation", "an explosion with fire and smoke"),
    "fire crackling": ("fire crackling", "a crackling fire", "a burning campfire", "flames burning wood"),
    "raining": ("raining", "rain falling", "a rainy day", "heavy rainfall"),
    "splashing water": ("splashing water", "water splashing", "waves splashing on the shore"),
    "squishing water": ("squishing water", "feet squishing through mud", "wet ground squelching"),
    "thunder": ("thunder", "a thunderstorm", "lightning and thunder", "a stormy sky"),
    "underwater bubbling": ("underwater bubbling", "bubbles under water", "an underwater scene with bubbles"),
    "waterfall burbling": ("waterfall burbling", "a waterfall", "water cascading down rocks"),
    "wind noise": ("wind noise", "wind blowing", "a windy day", "strong wind"),
    # Greatest Hits materials
    "wood": ("wood", "a wooden surface", "timber"),
    "metal": ("metal", "a metal surface", "steel"),
    "dirt": ("dirt", "soil", "muddy ground"),
    "rock": ("rock", "stone", "a boulder"),
    "leaf": ("leaves", "a pile of leaves", "fallen leaves"),
    "plastic": ("plastic", "a plastic surface", "a plastic object"),
    "cloth": ("cloth", "fabric", "a piece of cloth"),
    "paper": ("paper", "a sheet of paper", "a stack of paper"),
    "grass": ("grass", "a lawn", "green grass"),
    "water": ("water", "a puddle", "a water surface"),
    "drywall": ("drywall", "a plaster wall", "a gypsum board"),
    "gravel": ("gravel", "pebbles", "small stones"),
    "plastic-bag": ("plastic bag", "a plastic bag", "a shopping bag"),
    "ceramic": ("ceramic", "pottery", "porcelain"),
    "tile": ("tile", "a tiled floor", "ceramic tiles"),
    "carpet": ("carpet", "a rug", "a carpeted floor"),
    "glass": ("glass", "a glass surface", "a window pane"),
    # RAVDESS emotions
    "neutral": ("neutral", "a neutral face", "an expressionless face"),
    "calm": ("calm", "a calm face", "a peaceful face", "a relaxed face"),
    "happy": ("happy", "a happy face", "a smiling face", "a joyful face"),
    "sad": ("sad", "a sad face", "an unhappy face", "a sorrowful face"),
    "angry": ("angry", "an angry face", "a furious face"),
    "fearful": ("fearful", "a fearful face", "a scared face", "a frightened face"),
    "disgust": ("disgust", "a disgusted face", "a repulsed face"),
    "surprised": ("surprised", "a surprised face", "an astonished face"),
    # Into-the-Wild tags (combined labels such as "forest+rain" are built from these, see label_phrases)
    "snow": ("snow", "a snowy trail", "snow-covered ground"),
    "forest": ("forest", "a forest trail", "woods"),
    "rain": ("rain", "rainy weather", "a rainy trail"),
    "hiking": ("hiking", "a hiking trail", "a mountain path"),
}


@dataclass(frozen=True)
class GlueGenSettings:
    """``competitors.gluegen.*``. steps, batch, lr, wd: the demo SonicDiffusion stage-2 budget; the loss and its
    prompts: the original's (module docstring)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    templates: tuple[str, ...] = TEMPLATES  # label-prompt templates, one drawn per clip and step
    template: str | None = None  # shorthand for templates=(template,), as older configs set it
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SYNONYMS), hash=False)  # {}: none
    target_norm: float | None = 2.0  # targets / (per-token norm / target_norm); None: raw targets
    importance_weights: bool = True  # per-token weights on the alignment MSE
    align_weight: float = 1e4
    recon_weight: float = 1e4 / 1024  # the original's 1e4 on unit-norm 1024-d features, for unit-scale ones
    adversarial_weight: float = 0.1  # 0: no discriminator
    reversal_lambda: float = 0.1  # the gradient-reversal factor between the tokens and the discriminator
    hidden_dim: int = 256
    num_layers: int = 2
    num_heads: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "templates", tuple(self.templates))
        if self.template is not None:
            if self.templates not in (TEMPLATES, (self.template,)):
                raise ValueError("gluegen: set templates or template (one template), not both")
            object.__setattr__(self, "templates", (self.template,))
            object.__setattr__(self, "template", None)  # one spelling: equal settings, equal fingerprints
        if not isinstance(self.synonyms, Mapping):
            raise ValueError(f"gluegen.synonyms must map labels to lists of phrases, got {self.synonyms!r}")
        object.__setattr__(self, "synonyms", {str(k): tuple(v) for k, v in self.synonyms.items()})
        if min(self.steps, self.batch_size, self.hidden_dim, self.num_layers, self.num_heads) < 1:
            raise ValueError("gluegen.steps, batch_size, hidden_dim, num_layers and num_heads must be >= 1")
        if self.align_weight < 0 or self.recon_weight < 0 or not (self.align_weight or self.recon_weight):
            raise ValueError("gluegen: align_weight and recon_weight must be >= 0 and not both 0")
        if self.adversarial_weight < 0 or self.reversal_lambda < 0:
            raise ValueError("gluegen: adversarial_weight and reversal_lambda must be >= 0")
        if self.target_norm is not None and self.target_norm <= 0:
            raise ValueError(f"gluegen.target_norm must be positive or null, got {self.target_norm}")
        if not self.templates or any(not isinstance(t, str) or t.count("{}") != 1 for t in self.templates):
            raise ValueError(f"gluegen.templates must be strings with one '{{}}' each, got {self.templates!r}")
        bad = [k for k, v in self.synonyms.items() if not v or not all(isinstance(p, str) and p for p in v)]
        if bad:
            raise ValueError(f"gluegen.synonyms: labels {bad} need a non-empty list of non-empty phrases")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"gluegen.hidden_dim ({self.hidden_dim}) must be divisible by num_heads "
                             f"({self.num_heads})")


# ---- Wav2CLIP's audio encoder (sonic/models/wav2clip.py), held by the miniature Wav2CLIP's recipe below -------
STAGE_MULTIPLIERS = (1, 2, 4, 8)  # channel width of ResNet stages 1..4, in units of base_width


@dataclass(frozen=True)
class Wav2ClipConfig:
    sample_rate: int = 16000  # VGGSoundAudioVisualDataset loads audio at 16 kHz
    n_fft: int = 512  # torchaudio Spectrogram(n_fft=512, hop_length=353); win_length = n_fft
    hop: int = 353
    base_width: int = 64  # stem and stage-1 channels; stages 2..4 have 2x, 4x, 8x (official 64 -> 512)
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # BasicBlocks per stage (ResNet-18)
    mlp_hidden: int = 512  # MLPLayers(units=[512, 512, 512]): trunk width -> hidden -> embed_dim
    embed_dim: int = 512
    dropout: float = 0.1
    per_clip_norm: bool = True  # False: one mean/std over the whole batch, as the official forward

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        for name in ("sample_rate", "n_fft", "hop", "base_width", "mlp_hidden", "embed_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"wav2clip.{name} must be >= 1, got {getattr(self, name)}")
        if len(self.blocks) != len(STAGE_MULTIPLIERS) or min(self.blocks) < 1:
            raise ValueError(f"wav2clip.blocks must be {len(STAGE_MULTIPLIERS)} counts >= 1, got {self.blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"wav2clip.dropout must be in [0, 1), got {self.dropout}")

    @property
    def trunk_dim(self) -> int:
        """Width of the pooled ResNet features (input of the MLP head)."""
        return self.base_width * STAGE_MULTIPLIERS[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["blocks"] = list(self.blocks)
        return d


# ---- the demo's miniature pretrained models (pretrain.<model>; sonic/demo/pretrain/<model>.py) ---------------
@dataclass(frozen=True)
class SdSettings:
    seed: int = field(default=0, metadata={"config": False})  # the top-level seed, not a config key
    image_size: int = 64  # = unet sample_size * 2 ** (len(vae_channels) - 1)
    # VAE
    vae_channels: tuple[int, ...] = (32, 32, 32)
    vae_layers_per_block: int = 1  # encoder resnets per level (the decoder has one more)
    vae_groups: int = 4  # GroupNorm groups; the pooling initialisation needs groups of >= 8 channels
    vae_pooling_init: bool = True  # start as 4x4 average pooling + linear upsampling (init_pooling_vae)
    latent_channels: int = 4
    vae_steps: int = 300
    vae_batch_size: int = 32
    vae_crop: int = 32  # training crop side in pixels (random position, random mirror)
    vae_lr: float = 5e-4
    vae_betas: tuple[float, float] = (0.5, 0.9)
    vae_l2_weight: float = 1.0
    resnet_gain_init: float | None = 0.1  # initial GroupNorm scale before each resnet's second conv (VAE, UNet)
    kl_weight: float = 1e-6  # on the KL per latent element, against the per-pixel reconstruction loss
    vae_logvar_init: float = -6.0  # initial posterior log-variance (the logvar half of quant_conv starts constant)
    posterior_std: float = 0.05  # final posterior std in the standardised latent space (fix_posterior_std)
    vae_decoder_noise: float = 0.4  # the decoder learns on latents + U(0, this) x latent std x N(0, 1) (train_vae)
    latent_std: float = 0.56  # std of the scaled latents the UNet sees (SD-1.4: ~1); see the module docstring
    # UNet
    unet_steps: int = 700
    unet_batch_size: int = 24
    unet_lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 10
    min_snr_gamma: float | None = 5.0
    prediction_type: str = "v_prediction"  # "epsilon" (SD-1.x) or "v_prediction" (SD-2.x); see the module docstring
    reference_targets: bool = True  # exact posterior-mean targets over the clip's text group (see train_unet)
    empty_prob: float = 0.1  # classifier-free guidance: the empty prompt
    phrase_prob: float = 0.1  # the class phrase instead of the caption
    label_prob: float = 0.1  # the raw label string instead of the caption
    balance_power: float = 0.5
    latent_variants: int = 4  # full, mirrored, and (variants - 2) random crops
    crop_scale: tuple[float, float] = (0.8, 1.0)  # crop side / frame side
    # quality check
    eval_seeds: int = 2  # images per label and prompt kind
    eval_steps: int = 25
    guidance_scale: float = 8.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "vae_channels", tuple(int(c) for c in self.vae_channels))
        object.__setattr__(self, "crop_scale", tuple(float(c) for c in self.crop_scale))
        object.__setattr__(self, "vae_betas", tuple(float(c) for c in self.vae_betas))
        for name in ("image_size", "latent_channels", "vae_batch_size", "vae_crop", "unet_batch_size",
                     "latent_variants", "eval_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"sd.{name} must be >= 1, got {getattr(self, name)}")
        if self.vae_decoder_noise < 0:
            raise ValueError(f"sd.vae_decoder_noise must be >= 0, got {self.vae_decoder_noise}")
        for name in ("vae_steps", "unet_steps", "eval_seeds"):
            if getattr(self, name) < 0:
                raise ValueError(f"sd.{name} must be >= 0, got {getattr(self, name)}")
        if self.latent_variants < 2:
            raise ValueError("sd.latent_variants must be >= 2 (the frame and its mirror image)")
        if self.vae_crop > self.image_size or self.vae_crop % self.vae_scale:
            raise ValueError(f"sd.vae_crop {self.vae_crop} must divide by {self.vae_scale} and fit the image")
        if not 0.0 <= self.empty_prob + self.phrase_prob + self.label_prob <= 1.0:
            raise ValueError("sd.empty_prob + phrase_prob + label_prob must be in [0, 1]")
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(f"sd.crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)


OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's and BLIP-2's image normalisation


OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipSettings:
    seed: int = field(default=0, metadata={"config": False})  # the top-level seed, not a config key
    steps: int = 100
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 20
    label_text_prob: float = 0.5  # share of samples whose text is the raw label string
    balance_power: float = 0.5  # sampling weight count(label) ** -balance_power
    crop_area: tuple[float, float] = (0.5, 1.0)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 128  # = the demo UNet's cross_attention_dim (workflow/configs/unet_demo.json)
    text_layers: int = 3
    text_heads: int = 4
    mlp_ratio: int = 4
    projection_dim: int = 128
    vocab_size: int = 1000
    image_mean: tuple[float, float, float] = OPENAI_MEAN
    image_std: tuple[float, float, float] = OPENAI_STD

    def __post_init__(self) -> None:
        for name in ("crop_area", "crop_aspect", "image_mean", "image_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("steps", "batch_size", "image_size", "patch_size", "vision_hidden", "vision_layers",
                     "vision_heads", "text_hidden", "text_layers", "text_heads", "mlp_ratio", "projection_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"clip.{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"clip.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if not 0.0 <= self.label_text_prob <= 1.0:
            raise ValueError(f"clip.label_text_prob must be in [0, 1], got {self.label_text_prob}")
        if not 0.0 < self.crop_area[0] <= self.crop_area[1] <= 1.0:
            raise ValueError(f"clip.crop_area must satisfy 0 < lo <= hi <= 1, got {self.crop_area}")


@dataclass(frozen=True)
class Blip2Settings:
    seed: int = field(default=0, metadata={"config": False})  # the top-level seed, not a config key
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    balance_power: float = 0.5  # sampling weight count(label) ** -balance_power
    crop_area: tuple[float, float] = (0.7, 1.0)  # random resized crop, share of the image area
    image_size: int = 64
    patch_size: int = 16  # a 4x4 grid: 8-px patches cost 2.5x per step and needed more steps for the same captions
    vision_hidden: int = 128
    vision_layers: int = 3
    vision_heads: int = 4
    qformer_hidden: int = 128
    qformer_layers: int = 2
    qformer_heads: int = 4
    num_query_tokens: int = 8
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    mlp_ratio: int = 4
    max_positions: int = 128  # OPT position table: num_query_tokens + 1 + caption + max_new_tokens must fit
    vocab_size: int = 512  # upper bound; the captions' merges run out earlier
    image_mean: tuple[float, float, float] = OPENAI_MEAN
    image_std: tuple[float, float, float] = OPENAI_STD

    def __post_init__(self) -> None:
        for name in ("crop_area", "image_mean", "image_std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name in ("steps", "batch_size", "image_size", "patch_size", "vision_hidden", "vision_layers",
                     "vision_heads", "qformer_hidden", "qformer_layers", "qformer_heads", "num_query_tokens",
                     "text_hidden", "text_layers", "text_heads", "mlp_ratio", "max_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"blip2.{name} must be >= 1, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"blip2.image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if not 0.0 < self.crop_area[0] <= self.crop_area[1] <= 1.0:
            raise ValueError(f"blip2.crop_area must satisfy 0 < lo <= hi <= 1, got {self.crop_area}")


@dataclass(frozen=True)
class ClapRecipe:
    """Architecture, front end and training schedule of the miniature CLAP."""

    # front end (ClapFeatureExtractor): 10 s at 48 kHz -> (251 frames, 64 mels), 40 ms hop
    sample_rate: int = 48000
    max_length_s: int = 10
    num_mel_bins: int = 64
    hop_length: int = 1920
    fft_window_size: int = 1024
    # HTSAT folds the (frames <= spec_size * r, mels) log-mel into a spec_size x spec_size image, r = spec_size // mels
    spec_size: int = 128
    patch_size: int = 8
    window_size: int = 4
    depths: tuple[int, ...] = (1, 1, 1)
    audio_heads: tuple[int, ...] = (1, 2, 4)
    patch_dim: int = 32  # stage widths 32, 64, 128
    audio_dropout: float = 0.0
    learn_input_norm: bool = False  # affine of HTSAT's per-mel BatchNorm; frozen, backprop stops at the patch conv
    # RoBERTa text tower
    vocab_size: int = 512
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 2
    text_ffn: int = 128
    text_dropout: float = 0.0
    max_text_tokens: int = 62  # tokenizer limit; position table has 2 more rows (RoBERTa offsets by pad id + 1)
    projection_dim: int = 128
    # training
    # 900: fewer leave RAVDESS's sung emotions entangled (docs/pretrained-models.md)
    steps: int = 900
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 10
    label_batch_every: int = 4  # every 4th batch pairs the audio with label words instead of captions
    gain_jitter_db: float = 1.0
    max_logit_scale: float = 100.0


@dataclass(frozen=True)
class Wav2ClipSettings:
    seed: int = field(default=0, metadata={"config": False})  # the top-level seed, not a config key
    steps: int = 150
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-2
    crop_seconds: float = 4.0  # random audio crop per step (augmentation, and 2.5x cheaper than 10 s)
    temperature: float = 0.07
    model: Wav2ClipConfig = field(
        default_factory=lambda: Wav2ClipConfig(base_width=16, blocks=(1, 1, 1, 1), mlp_hidden=128, embed_dim=128)
    )


@dataclass(frozen=True)
class FidNetSettings:
    seed: int = field(default=0, metadata={"config": False})  # the top-level seed, not a config key
    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    label_smoothing: float = 0.1
    balance_power: float = 0.5  # sampling weight count(class) ** -balance_power
    shift: int = 6  # random crop: up to this many pixels of translation, in each direction
    greyscale_prob: float = 0.3  # share of training frames seen in grey, so the features see shape, not colour alone
    image_size: int = 64  # the demo's generation.resolution
    widths: tuple[int, ...] = (32, 64, 128, 128)  # the last is the feature dimension
    eval_batch: int = 256

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        for name in ("steps", "batch_size", "image_size", "eval_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"fid.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.shift < self.image_size:
            raise ValueError(f"fid.shift must be in [0, image_size), got {self.shift}")
        if not 0.0 <= self.greyscale_prob <= 1.0:
            raise ValueError(f"fid.greyscale_prob must be in [0, 1], got {self.greyscale_prob}")
