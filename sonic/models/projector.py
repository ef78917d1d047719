"""Audio projector: a CLAP embedding -> K tokens in the SD text-token space (paper §3.3, Fig. 4; supp. §1.3).

Architecture (paper Fig. 4, supp. §1.3):

    e (B, d_a) --Conv1d(1->K)--GELU--ConvTranspose1d(K->K, x2)--GELU--Linear(2 d_a -> C)--> (B, K, C)
      + learned token positions
      --> 4 x [x = x + SelfAttn(LayerNorm(x))]     (each block feeds the next)
      --> LayerNorm --> Linear(C -> C)           = audio tokens c_audio (B, K, C)

The authors' release only routes the last attention block to the output; here every block feeds the next
and the last one feeds the output layer, as the paper describes. The attention inner width
(``attn_dim``) is a config value; 512 gives ~7.9M parameters at K=77, C=768 (paper: 8M).

``architecture: release`` (:class:`ReleaseProjector`) is the authors' released module instead, kept as released so
that their weights load (docs/paper-profile.md#released-weights); it is never the default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


ARCHITECTURES = ("paper", "release")
RELEASE_KERNEL = 17  # the released mapper's convolution width


def release_token_dim(audio_dim: int) -> int:
    """Token width of the released mapper: d_a -> 3 d_a (ConvTranspose1d, stride 3) -> Conv1d stride 4."""
    return (3 * audio_dim + 2 * 7 - RELEASE_KERNEL) // 4 + 1


@dataclass(frozen=True)
class ProjectorConfig:
    audio_dim: int = 512  # CLAP embedding size (512 LAION CLAP, 1024 Microsoft CLAP)
    num_tokens: int = 77  # K; 1 = the "single token" ablation
    token_dim: int = 768  # C; must equal the UNet's cross_attention_dim
    num_blocks: int = 4
    num_heads: int = 8
    attn_dim: int = 512  # inner width of q/k/v in the self-attention blocks
    architecture: str = "paper"  # paper | release (the authors' released module, ReleaseProjector)

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        for name in ("audio_dim", "num_tokens", "token_dim", "num_blocks", "num_heads", "attn_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"projector.{name} must be >= 1, got {getattr(self, name)}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"projector.architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.architecture == "release" and release_token_dim(self.audio_dim) != self.token_dim:
            raise ValueError(
                f"projector.architecture release maps a {self.audio_dim}-d embedding to "
                f"{release_token_dim(self.audio_dim)}-d tokens, but the UNet's tokens are {self.token_dim}-d "
                "(the released module needs audio_dim 1024 for SD-1.x's 768)")
        if self.attn_dim % self.num_heads:
            raise ValueError(
                f"projector.attn_dim ({self.attn_dim}) must be divisible by projector.num_heads ({self.num_heads})"
            )


class SelfAttentionBlock(nn.Module):
    """Pre-norm residual multi-head self-attention over the K tokens."""

    def __init__(self, dim: int, attn_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * attn_dim)
        self.to_out = nn.Linear(attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, _ = x.shape
        q, kk, v = self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        # (B, K, attn_dim) -> (B, heads, K, d)
        q, kk, v = (t.view(b, k, self.num_heads, -1).transpose(1, 2) for t in (q, kk, v))
        out = F.scaled_dot_product_attention(q, kk, v)
        out = out.transpose(1, 2).reshape(b, k, -1)  # (B, K, attn_dim)
        return x + self.to_out(out)


class AudioProjector(nn.Module):
    """Maps CLAP embeddings (B, d_a) to audio tokens (B, K, C)."""

    def __init__(self, config: ProjectorConfig | None = None, **kwargs):
        super().__init__()
        self.config = config if config is not None else ProjectorConfig(**kwargs)
        cfg = self.config
        k = cfg.num_tokens
        # Mapper: the embedding is a 1-channel signal of length d_a; the conv makes K channels (= tokens).
        self.conv = nn.Conv1d(1, k, kernel_size=3, padding=1)
        self.deconv = nn.ConvTranspose1d(k, k, kernel_size=4, stride=2, padding=1)  # length d_a -> 2 d_a
        self.to_tokens = nn.Linear(2 * cfg.audio_dim, cfg.token_dim)
        self.positions = nn.Parameter(torch.zeros(k, cfg.token_dim))
        nn.init.normal_(self.positions, std=0.02)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(cfg.token_dim, cfg.attn_dim, cfg.num_heads) for _ in range(cfg.num_blocks)
        )
        self.norm_out = nn.LayerNorm(cfg.token_dim)
        self.proj_out = nn.Linear(cfg.token_dim, cfg.token_dim)
        # Input standardisation (saved with the weights, not trained): CLAP embeddings are unit vectors that differ
        # little from clip to clip (per-dimension std ~0.04 on the demo data), which a freshly initialised mapper
        # barely sees; stage 1 sets these to the training set's per-dimension mean and std.
        self.register_buffer("input_mean", torch.zeros(cfg.audio_dim))
        self.register_buffer("input_std", torch.ones(cfg.audio_dim))

    @torch.no_grad()
    def set_input_stats(self, audio_embeds: torch.Tensor, eps: float = 1e-6) -> None:
        """Standardise inputs with the per-dimension mean and std of ``audio_embeds`` (N, d_a)."""
        self.input_mean.copy_(audio_embeds.float().mean(0))
        self.input_std.copy_(audio_embeds.float().std(0).clamp_min(eps))

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        if audio_embeds.ndim != 2 or audio_embeds.shape[1] != self.config.audio_dim:
            raise ValueError(
                f"AudioProjector expects (batch, {self.config.audio_dim}) embeddings, got {tuple(audio_embeds.shape)}"
            )
        x = ((audio_embeds - self.input_mean) / self.input_std)[:, None, :]  # (B, 1, d_a)
        x = F.gelu(self.conv(x))  # (B, K, d_a)
        x = F.gelu(self.deconv(x))  # (B, K, 2 d_a)
        x = self.to_tokens(x) + self.positions  # (B, K, C)
        for block in self.blocks:
            x = block(x)
        return self.proj_out(self.norm_out(x))

    def null_tokens(self, batch_size: int = 1) -> torch.Tensor:
        """The "null audio" condition: the projector applied to an all-zero CLAP embedding."""
        p = self.proj_out.weight
        zeros = torch.zeros(batch_size, self.config.audio_dim, device=p.device, dtype=p.dtype)
        return self(zeros)


class ReleaseAttention(nn.Module):
    """One attention block of the released module: bias-free q/k/v of the tokens, softmax attention, no output
    projection (its MLP follows)."""

    def __init__(self, dim: int, attn_dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.to_q_adapter = nn.Linear(dim, attn_dim, bias=False)
        self.to_k_adapter = nn.Linear(dim, attn_dim, bias=False)
        self.to_v_adapter = nn.Linear(dim, attn_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, _ = x.shape
        q, kk, v = (f(x).view(b, k, self.num_heads, -1).transpose(1, 2)
                    for f in (self.to_q_adapter, self.to_k_adapter, self.to_v_adapter))
        return F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).reshape(b, k, -1)


class ReleaseProjector(nn.Module):
    """The authors' released projector (``ldm/modules/encoders/audio_projector_res.py``, class ``Adapter``), with
    their module names so that ``audio_projector_*.pth`` loads strictly::

        e (B, d_a) as (B, 1, d_a)
          -> Conv1d(1 -> K, 17), GELU, Conv1d(K -> K, 17), GELU, LayerNorm([K, d_a]),
             Conv1d(K -> K, 17), GELU, LayerNorm([K, d_a]), ConvTranspose1d(K -> K, 17, stride 3), GELU,
             LayerNorm([K, 3 d_a]), GELU, Conv1d(K -> K, 17, stride 4)                       = m (B, K, C)
          -> for each of the 4 blocks: out = MLP_i(Attn_i(m)) + m    (every block reads m: only the last reaches
             the output, as released; the paper describes a chain)
          -> Linear(C -> C)                                                                  = tokens (B, K, C)

    No input standardisation: the released module reads the L2-normalised CLAP embeddings as they are.
    At K = 77, d_a = 1024, C = 768, 8 heads of 40: 6,130,050 parameters.
    """

    def __init__(self, config: ProjectorConfig):
        super().__init__()
        self.config = config
        k, d, c, w = config.num_tokens, config.audio_dim, config.token_dim, RELEASE_KERNEL
        self.audio_emb_projection = nn.Sequential(
            nn.Conv1d(1, k, w, padding=8), nn.GELU(),
            nn.Conv1d(k, k, w, padding=8), nn.GELU(), nn.LayerNorm([k, d]),
            nn.Conv1d(k, k, w, padding=8), nn.GELU(), nn.LayerNorm([k, d]),
            nn.ConvTranspose1d(k, k, w, stride=3, padding=7), nn.GELU(), nn.LayerNorm([k, 3 * d]), nn.GELU(),
            nn.Conv1d(k, k, w, stride=4, padding=7), nn.Dropout(0.0),
        )
        self.cross_attention = nn.ModuleList(
            ReleaseAttention(c, config.attn_dim, config.num_heads) for _ in range(config.num_blocks))
        self.between_attention = nn.ModuleList(
            nn.Sequential(nn.Linear(config.attn_dim, config.attn_dim), nn.GELU(), nn.Linear(config.attn_dim, c),
                          nn.Dropout(0.0))
            for _ in range(config.num_blocks))
        self.to_out_adapter = nn.Sequential(nn.Linear(c, c), nn.Dropout(0.0))

    def set_input_stats(self, audio_embeds: torch.Tensor, eps: float = 1e-6) -> None:
        """Nothing to set: the released module has no input standardisation (see the class docstring)."""

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        if audio_embeds.ndim != 2 or audio_embeds.shape[1] != self.config.audio_dim:
            raise ValueError(
                f"ReleaseProjector expects (batch, {self.config.audio_dim}) embeddings, got {tuple(audio_embeds.shape)}"
            )
        mapped = self.audio_emb_projection(audio_embeds[:, None, :])  # (B, K, C)
        out = mapped
        for attention, mlp in zip(self.cross_attention, self.between_attention):
            out = mlp(attention(mapped)) + mapped  # as released: each block reads the mapper's output
        return self.to_out_adapter(out)

    def null_tokens(self, batch_size: int = 1) -> torch.Tensor:
        """The null audio condition, as the released app builds it: the module applied to a zero embedding."""
        p = self.to_out_adapter[0].weight
        return self(torch.zeros(batch_size, self.config.audio_dim, device=p.device, dtype=p.dtype))


Projector = AudioProjector | ReleaseProjector  # either architecture (config.architecture)


def build_projector(config: ProjectorConfig) -> Projector:
    """The projector of ``config.architecture``: the paper's (default) or the authors' released module."""
    return ReleaseProjector(config) if config.architecture == "release" else AudioProjector(config)
