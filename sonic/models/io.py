"""SonicDiffusion weights on disk: the projector and the gated layers, one safetensors file plus a JSON config.

    <dir>/config.json        {"format": "sonic-diffusion", "version": 1, "projector": {...}, "adapters": {...}}
    <dir>/model.safetensors  keys "projector.<module path>" and "adapters.<layer>.<module path>"

Loading is strict: a missing or unexpected key, or a shape mismatch, is an error naming the keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, save_file

from sonic.errors import InputError, read_json
from sonic.models.projector import Projector, ProjectorConfig, build_projector

if TYPE_CHECKING:  # the adapters import diffusers; projector files (stage 1) are read and written without it
    from diffusers import UNet2DConditionModel

    from sonic.models.adapters import AudioAdapters

FORMAT = "sonic-diffusion"
VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_weights(path: str | Path, projector: Projector, adapters: AudioAdapters, **metadata) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in trainable_state(projector, adapters).items()}
    config = {
        "format": FORMAT,
        "version": VERSION,
        "projector": projector.config.to_dict(),
        "adapters": {"layers": adapters.names},
        "metadata": metadata,
    }
    return write_folder(path, tensors, config)


def write_folder(path: Path, tensors: dict[str, torch.Tensor], config: dict) -> Path:
    """Weights first (through a temporary name), config last: a folder with a config is complete."""
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": config["format"]})
    tmp.replace(path / WEIGHTS_NAME)
    (path / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def read_config(path: str | Path, fmt: str = FORMAT, what: str = "SonicDiffusion weights") -> dict:
    """The ``config.json`` of a weights folder, checked for its format and version."""
    path = Path(path)
    cfg_file = path / CONFIG_NAME
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: not a {what} folder (no {CONFIG_NAME})")
    config = read_json(cfg_file, "JSON file")
    if not isinstance(config, dict) or config.get("format") != fmt or config.get("version") != VERSION:
        config = config if isinstance(config, dict) else {}
        raise InputError(f"{cfg_file}: expected format {fmt!r} version {VERSION}, got {config.get('format')!r} "
                         f"version {config.get('version')}")
    return config


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file of a weights folder; missing or unreadable -> an error naming it."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such weights file")
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own SafetensorError on a truncated or foreign file
        raise InputError(f"{file}: not a readable safetensors file ({err})") from err


def load_weights(path: str | Path, unet: UNet2DConditionModel) -> tuple[Projector, AudioAdapters]:
    """Build the projector, install the saved layers into ``unet`` and load both strictly."""
    path = Path(path)
    config = read_config(path)
    tensors = read_tensors(path / WEIGHTS_NAME)
    unknown = sorted(k for k in tensors if not k.startswith(("projector.", "adapters.")))
    if unknown:
        raise ValueError(f"{path / WEIGHTS_NAME}: unexpected keys {unknown}")
    projector = build_projector(ProjectorConfig(**config["projector"]))
    p_state = {k[len("projector.") :]: v for k, v in tensors.items() if k.startswith("projector.")}
    try:
        projector.load_state_dict(p_state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path / WEIGHTS_NAME}: projector weights do not match its config: {err}") from err
    from sonic.models.adapters import install_adapters

    adapters = install_adapters(unet, config["adapters"]["layers"])
    try:
        adapters.load_state_dict({k[len("adapters.") :]: v for k, v in tensors.items() if k.startswith("adapters.")})
    except Exception:
        adapters.remove()
        raise
    param = next(unet.parameters())
    projector.to(device=param.device, dtype=param.dtype)
    return projector, adapters


def trainable_state(projector: Projector, adapters: AudioAdapters) -> dict[str, torch.Tensor]:
    """The same key space as the weights file, for comparisons in tests and checkpoints."""
    state = {f"projector.{k}": v for k, v in projector.state_dict().items()}
    return state | {f"adapters.{k}": v for k, v in adapters.state_dict().items()}


def state_mismatch(expected, given) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of the state dict ``given`` against ``expected``, each sorted."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(expected) & set(given) if tuple(expected[k].shape) != tuple(given[k].shape))
    return missing, unexpected, wrong


def read_torch_file(path: str | Path, what: str):
    """A ``.pt``/``.pth`` file of another project (the released weights, a CLAP checkpoint), read with
    ``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"{path}: not a readable PyTorch file of tensors ({what}): {err}") from err


PROJECTOR_FORMAT = "sonic-diffusion-projector"


def save_projector(path: str | Path, projector: Projector, **metadata) -> Path:
    """A projector alone (the stage-1 result): ``config.json`` + ``model.safetensors`` with its module-path keys."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in projector.state_dict().items()}
    config = {"format": PROJECTOR_FORMAT, "version": VERSION, "projector": projector.config.to_dict(),
              "metadata": metadata}
    return write_folder(path, tensors, config)


def load_projector(path: str | Path) -> Projector:
    """The projector written by :func:`save_projector`, loaded strictly."""
    path = Path(path)
    config = read_config(path, PROJECTOR_FORMAT, "projector")
    projector = build_projector(ProjectorConfig(**config["projector"]))
    try:
        projector.load_state_dict(read_tensors(path / WEIGHTS_NAME), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path / WEIGHTS_NAME}: weights do not match the projector config: {err}") from err
    return projector
