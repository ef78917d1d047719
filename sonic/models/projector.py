"""Audio projector: a CLAP embedding -> K tokens in the SD text-token space (paper §3.3, Fig. 4; supp. §1.3).

Architecture (paper Fig. 4, supp. §1.3):

    e (B, d_a) --Conv1d(1->K)--GELU--ConvTranspose1d(K->K, x2)--GELU--Linear(2 d_a -> C)--> (B, K, C)
      + learned token positions
      --> 4 x [x = x + SelfAttn(LayerNorm(x))]     (each block feeds the next)
      --> LayerNorm --> Linear(C -> C)           = audio tokens c_audio (B, K, C)

The authors' release only routes the last attention block to the output; here every block feeds the next
and the last one feeds the output layer, as the paper describes. The attention inner width
(``attn_dim``) is a config value; 512 gives ~7.9M parameters at K=77, C=768 (paper: 8M).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProjectorConfig:
    audio_dim: int = 512  # CLAP embedding size (512 LAION CLAP, 1024 Microsoft CLAP)
    num_tokens: int = 77  # K; 1 = the "single token" ablation
    token_dim: int = 768  # C; must equal the UNet's cross_attention_dim
    num_blocks: int = 4
    num_heads: int = 8
    attn_dim: int = 512  # inner width of q/k/v in the self-attention blocks

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        for name in ("audio_dim", "num_tokens", "token_dim", "num_blocks", "num_heads", "attn_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"projector.{name} must be >= 1, got {getattr(self, name)}")
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
