"""The authors' released weights in this project's format (``sonic import-release``;
docs/paper-profile.md#released-weights).

The release (``BurakCanBiner/SonicDiffusion``, their HF Space) has per dataset

* ``audio_projector_<dataset>.pth``: the ``state_dict`` of their ``Adapter`` projector
  (:class:`~sonic.models.projector.ReleaseProjector` has the same module names);
* ``<dataset>.pt``: a plain dict of the UNet parameters whose name contains ``adapter``, keyed by UNet parameter
  name: ``<attention>.transformer_blocks.0.{attn_adapter.{to_q,to_k,to_v,to_out.0}, norm_adapter, gate_adapter}``
  for the mid block and the nine decoder attentions (their ``use_adapter_list=[False, True, True]``).

Their block computes ``h = h + tanh(gate_adapter) * Attn_adapter(norm_adapter(h), audio)`` after the text
cross-attention residual, which is this project's gated layer (``sonic.models.gated_attention``) with
``gamma = gate_adapter``, ``norm = norm_adapter`` and ``attn = attn_adapter``. Every released key must map onto one
of those and every mapped layer must be complete; anything left over or missing is an error listing the keys.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from sonic.methods import RELEASE_ENCODER
from sonic.models.io import FORMAT, VERSION, read_torch_file, state_mismatch, write_folder
from sonic.models.projector import ProjectorConfig, ReleaseProjector

log = logging.getLogger(__name__)

RELEASE_HEADS = 8  # the released Adapter's h (not recoverable from shapes: dim_head 40 x 8 = 320)
RELEASE_ATTN_DIM = 320  # its q/k/v width (h x dim_head)
_ADAPTER_KEY = re.compile(
    r"^(?:down_blocks\.(?P<down>\d+)|(?P<mid>mid_block)|up_blocks\.(?P<up>\d+))\.attentions\.(?P<attn>\d+)"
    r"\.transformer_blocks\.(?P<block>\d+)\.(?P<part>attn_adapter|norm_adapter|gate_adapter)(?:\.(?P<rest>.+))?$")
_PARTS = {  # released (part, rest) -> this project's key inside one layer
    ("attn_adapter", "to_q.weight"): "attn.to_q.weight",
    ("attn_adapter", "to_k.weight"): "attn.to_k.weight",
    ("attn_adapter", "to_v.weight"): "attn.to_v.weight",
    ("attn_adapter", "to_out.0.weight"): "attn.to_out.0.weight",
    ("attn_adapter", "to_out.0.bias"): "attn.to_out.0.bias",
    ("norm_adapter", "weight"): "norm.weight",
    ("norm_adapter", "bias"): "norm.bias",
    ("gate_adapter", None): "gamma",
}
# SD-1.x: two attentions per down block; three layers per up block, counted as in sonic.models.adapters
_DOWN_PER_BLOCK, _UP_PER_BLOCK = 2, 3


def read_state(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A released ``.pth``/``.pt`` file: a flat ``{name: tensor}`` dict, read with ``weights_only=True``."""
    state = read_torch_file(path, f"the released {what}")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a dict of tensors (the released {what}), got {type(state).__name__}")
    return {str(k): v for k, v in state.items()}


def layer_of(match: re.Match) -> str:
    """This project's layer name (``sonic.models.adapters``) of a released key's attention."""
    a = int(match["attn"])
    if match["down"] is not None:
        return f"down{_DOWN_PER_BLOCK * int(match['down']) + a}"
    if match["mid"] is not None:
        return "mid" if a == 0 else f"mid{a}"
    return f"up{_UP_PER_BLOCK * int(match['up']) + a}"


def _layer_order(name: str) -> tuple[int, int]:
    kind = 0 if name.startswith("down") else 1 if name.startswith("mid") else 2
    digits = re.sub(r"\D", "", name)
    return kind, int(digits) if digits else 0


def map_adapters(released: Mapping[str, torch.Tensor], source: str = "adapters") -> tuple[list[str], dict]:
    """Released adapter keys -> (layer names in UNet order, ``{<layer>.<key>: tensor}`` of this project)."""
    mapped: dict[str, torch.Tensor] = {}
    left_over = []
    for key, value in released.items():
        m = _ADAPTER_KEY.match(key)
        target = _PARTS.get((m["part"], m["rest"])) if m else None
        if target is None or m["block"] != "0":
            left_over.append(key)
            continue
        mapped[f"{layer_of(m)}.{target}"] = value.reshape(()) if target == "gamma" else value
    layers = sorted({k.split(".", 1)[0] for k in mapped}, key=_layer_order)
    missing = [f"{layer}.{t}" for layer in layers for t in _PARTS.values() if f"{layer}.{t}" not in mapped]
    if left_over or missing:
        raise ValueError(f"{source}: the released adapter keys do not map onto gated layers: left over "
                       f"{sorted(left_over)}, missing (this project's names) {missing}")
    if not layers:
        raise ValueError(f"{source}: no adapter keys (expected '<attention>.transformer_blocks.0.attn_adapter.*')")
    return layers, mapped


def released_adapter_state(unet, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Random adapters in the released ``<dataset>.pt`` layout for ``unet`` (a paper-size rehearsal; meta-device
    UNets serve, only shapes are read): for the mid block and each attention of decoder blocks 1-3, as the authors'
    block creates them, an Attention shaped like the block's text cross-attention, a LayerNorm and a gate of
    shape [1] (N(0, 0.02) weights, unit norms, gate 0.1)."""
    state = {}
    paths = ["mid_block.attentions.0"] + [f"up_blocks.{b}.attentions.{a}" for b in (1, 2, 3) for a in range(3)]
    modules = dict(unet.named_modules())
    for path in paths:
        attn2 = modules[path].transformer_blocks[0].attn2
        prefix = f"{path}.transformer_blocks.0."
        for name in ("to_q", "to_k", "to_v"):
            shape = getattr(attn2, name).weight.shape
            state[f"{prefix}attn_adapter.{name}.weight"] = 0.02 * torch.randn(shape, generator=generator)
        out = attn2.to_out[0]
        state[f"{prefix}attn_adapter.to_out.0.weight"] = 0.02 * torch.randn(out.weight.shape, generator=generator)
        state[f"{prefix}attn_adapter.to_out.0.bias"] = torch.zeros(out.bias.shape)
        dim = attn2.to_q.weight.shape[1]
        state[f"{prefix}norm_adapter.weight"] = torch.ones(dim)
        state[f"{prefix}norm_adapter.bias"] = torch.zeros(dim)
        state[f"{prefix}gate_adapter"] = torch.tensor([0.1])
    return state


def projector_config_of(state: Mapping[str, torch.Tensor], heads: int = RELEASE_HEADS,
                        source: str = "projector") -> ProjectorConfig:
    """The :class:`ReleaseProjector` config read from a released state dict's shapes."""
    try:
        blocks = len({k.split(".")[1] for k in state if k.startswith("cross_attention.")})
        return ProjectorConfig(
            audio_dim=int(state["audio_emb_projection.4.weight"].shape[1]),
            num_tokens=int(state["audio_emb_projection.0.weight"].shape[0]),
            token_dim=int(state["to_out_adapter.0.weight"].shape[0]),
            num_blocks=blocks, num_heads=heads,
            attn_dim=int(state["cross_attention.0.to_q_adapter.weight"].shape[0]), architecture="release")
    except KeyError as err:
        raise ValueError(f"{source}: not the released projector layout (no {err.args[0]!r})") from err


def load_release_projector(state: Mapping[str, torch.Tensor], heads: int = RELEASE_HEADS,
                           source: str = "projector") -> ReleaseProjector:
    """A :class:`ReleaseProjector` holding ``state``, loaded strictly."""
    projector = ReleaseProjector(projector_config_of(state, heads, source))
    expected = projector.state_dict()
    missing, unexpected, wrong = state_mismatch(expected, state)
    if missing or unexpected or wrong:
        raise ValueError(f"{source}: does not match the released projector: missing {missing}, unexpected "
                       f"{unexpected}, mis-shaped {wrong}")
    projector.load_state_dict(state, strict=True)
    return projector


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_release(projector: str | Path, adapters: str | Path, out: str | Path, heads: int = RELEASE_HEADS) -> Path:
    """Write the released projector + adapters as a weights folder of this project (``sonic.models.io``), which
    :func:`~sonic.models.io.load_weights` and every generation and editing command read."""
    projector, adapters = Path(projector), Path(adapters)
    module = load_release_projector(read_state(projector, "projector"), heads, str(projector))
    layers, adapter_state = map_adapters(read_state(adapters, "adapters"), str(adapters))
    tensors = {f"projector.{k}": v for k, v in module.state_dict().items()}
    tensors |= {f"adapters.{k}": v for k, v in adapter_state.items()}
    tensors = {k: (v.float() if v.is_floating_point() else v).detach().contiguous() for k, v in tensors.items()}
    gates = {layer: round(float(torch.tanh(adapter_state[f"{layer}.gamma"].float())), 4) for layer in layers}
    config = {
        "format": FORMAT,
        "version": VERSION,
        "projector": module.config.to_dict(),
        "adapters": {"layers": layers},
        "metadata": {"imported_from": {"projector": str(projector), "projector_sha256": _sha256(projector),
                                       "adapters": str(adapters), "adapters_sha256": _sha256(adapters)},
                     "release": True, "gates": gates, "audio_encoder": RELEASE_ENCODER},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_folder(out, tensors, config)
    log.info("imported the release: projector %d parameters (%s), %d gated layers %s, tanh(gate) %s -> %s",
             sum(v.numel() for v in module.state_dict().values()), projector.name, len(layers), layers, gates, out)
    return out
