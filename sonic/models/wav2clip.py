"""Wav2CLIP audio encoder (Wu et al., ICASSP 2022), the audio tower of the AIS metric
(docs/paper-profile.md).

Our own implementation of the architecture in the ``wav2clip`` package (0.1.0, ``descriptinc/lyrebird-wav2clip``:
``wav2clip/model/resnet.py``, ``encoder.py``, ``__init__.py``), written so that the released weights
``Wav2CLIP.pt`` (GitHub release ``v0.1.0-alpha``) load into it with ``load_state_dict(strict=True)`` and without
torchaudio or a network connection::

    waveform (B, N), 16 kHz
      -> |STFT|^2  n_fft 512, hann(512) periodic, hop 353, centred with reflect padding   (B, 1, 257, 1 + N // 353)
      -> log(x + 1e-7), standardised (x - mean) / (std + 1e-9)
      -> ResNet-18 trunk: conv7x7/2 (1 -> 64), BN, ReLU, maxpool3x3/2,
         4 stages x 2 BasicBlocks (64, 128, 256, 512 channels; stride 2 from stage 2), global average pool  (B, 512)
      -> MLP head: Linear(512, 512), ReLU, Dropout(0.1), Linear(512, 512)                                   (B, 512)

The output is not normalised; callers L2-normalise it before comparing with CLIP image embeddings.

The released file is a flat ``{key: tensor}`` dict: the ``state_dict`` of the training module
(``ResNetDistillation``) whose audio tower is the attribute ``audio_encoder`` and whose audio head is
``audio_transform``. The official ``get_model()`` keeps the keys that start with those two names, strips the first
dotted component and loads each part strictly into ``ResNetExtractor.encoder`` / ``.transform``. This module names
its two children ``audio_encoder`` and ``audio_transform``, so its ``state_dict()`` keys are the file's keys
verbatim; :func:`official_state_dict_shapes` lists them. The file keeps the torchaudio ``Spectrogram`` window as
the persistent buffer ``audio_encoder.spectrogram.window``, so this module keeps it too.

Deviations and choices, each a config field or documented here:

* ``per_clip_norm`` (default ``True``): the official forward standardises the log-spectrogram with one mean and one
  std over the whole batch tensor, so a clip's embedding depends on its batch mates. We standardise each clip on
  its own; for a batch of one (how ``wav2clip.embed_audio`` is used on single clips) the two are identical.
  ``per_clip_norm=False`` reproduces the batch-wide statistic.
* The official frame-level mode (``frame_length``/``hop_length``, clips cut with ``librosa.util.frame``) is not
  reimplemented; callers cut frames themselves.
* Training-only entries of the file (the training module's ``image_transform`` head and ``loss_fn*`` logit
  scales, present in a raw dump of ``ResNetDistillation.state_dict()``) are ignored, as the official loader ignores
  every key outside the two audio prefixes; any other foreign key is an error.
* The official file stores no config. :func:`load_wav2clip` derives widths, block counts, MLP sizes and ``n_fft``
  from the tensor shapes; ``sample_rate`` and ``hop`` are not recorded and default to the official 16 kHz / 353
  unless a ``config`` is passed.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from sonic.settings import STAGE_MULTIPLIERS, Wav2ClipConfig

ENCODER_PREFIX = "audio_encoder."
TRANSFORM_PREFIX = "audio_transform."
# Other children of the official training module (wav2clip/pre_training/model.py, loss "clip_loss_x").
TRAINING_ONLY_PREFIXES = ("image_transform.", "loss_fn.", "loss_fn_a.", "loss_fn_i.")


class Spectrogram(nn.Module):
    """Power spectrogram as torchaudio's ``Spectrogram`` defaults compute it (power 2, periodic Hann window of
    ``n_fft``, centred frames with reflect padding, one-sided, no normalisation). The window is a persistent buffer
    because the official checkpoint stores it."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(waveform, self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=self.window,
                          center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        return spec.abs().pow(2)  # (B, n_fft // 2 + 1, 1 + N // hop)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with BN, identity (or 1x1 conv + BN) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class AudioResNet(nn.Module):
    """Waveform -> log power spectrogram -> ResNet-18 trunk -> pooled features (B, 8 * base_width).

    Module names follow the official ``ResNet`` (``conv1``, ``bn1``, ``layer1``..``layer4``, ``spectrogram``) so
    the state-dict keys match; the official class also builds an unused ``pool``/``softmax`` with no parameters.
    """

    def __init__(self, config: Wav2ClipConfig):
        super().__init__()
        self.per_clip_norm = config.per_clip_norm
        self.spectrogram = Spectrogram(config.n_fft, config.hop)
        w = config.base_width
        self.conv1 = nn.Conv2d(1, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = w
        for i, (mult, n) in enumerate(zip(STAGE_MULTIPLIERS, config.blocks), start=1):
            out_ch, stride = w * mult, 1 if i == 1 else 2
            stage = [BasicBlock(in_ch, out_ch, stride)] + [BasicBlock(out_ch, out_ch) for _ in range(n - 1)]
            self.add_module(f"layer{i}", nn.Sequential(*stage))
            in_ch = out_ch
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        # Official initialisation (matters only for training from scratch, e.g. the demo's miniature model).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, mean=1.0, std=0.02)
                nn.init.zeros_(m.bias)

    def log_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) -> standardised log power spectrogram (B, 1, n_fft // 2 + 1, frames)."""
        x = torch.log(self.spectrogram(waveform).unsqueeze(1) + 1e-7)
        if self.per_clip_norm:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.flatten(1).std(dim=1).view(-1, 1, 1, 1)  # unbiased, as torch.std in the official code
        else:
            mean, std = x.mean(), x.std()
        return (x - mean) / (std + 1e-9)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.log_spectrogram(waveform)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)  # (B, 8 * base_width)


class MLPHead(nn.Module):
    """The official ``MLPLayers(units=[d_in, hidden, out])``: Linear, ReLU, Dropout, Linear in ``sequential``
    (indices 0..3, so the weights are ``sequential.0`` and ``sequential.3``)."""

    def __init__(self, d_in: int, hidden: int, d_out: int, dropout: float):
        super().__init__()
        self.sequential = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)


class Wav2Clip(nn.Module):
    """Wav2CLIP audio encoder: (B, N) float32 waveforms at ``config.sample_rate`` -> (B, embed_dim), unnormalised."""

    def __init__(self, config: Wav2ClipConfig | None = None):
        super().__init__()
        self.config = config or Wav2ClipConfig()
        self.audio_encoder = AudioResNet(self.config)
        self.audio_transform = MLPHead(self.config.trunk_dim, self.config.mlp_hidden, self.config.embed_dim,
                                       self.config.dropout)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"Wav2Clip expects waveforms (B, N), got shape {tuple(waveform.shape)}")
        if waveform.shape[1] <= self.config.n_fft // 2:
            raise ValueError(f"Wav2Clip needs more than {self.config.n_fft // 2} samples per clip (reflect padding), "
                             f"got {waveform.shape[1]}")
        return self.audio_transform(self.audio_encoder(waveform.float()))


def _state_dict_shapes(config: Wav2ClipConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape table of the official file's audio entries for an architecture described by ``config``,
    written out from the official ResNet/MLPLayers definitions (independent of the module code above)."""

    def bn(prefix: str, ch: int) -> dict:
        return {f"{prefix}.weight": (ch,), f"{prefix}.bias": (ch,), f"{prefix}.running_mean": (ch,),
                f"{prefix}.running_var": (ch,), f"{prefix}.num_batches_tracked": ()}

    e, w = ENCODER_PREFIX, config.base_width
    shapes: dict[str, tuple[int, ...]] = {f"{e}spectrogram.window": (config.n_fft,), f"{e}conv1.weight": (w, 1, 7, 7)}
    shapes |= bn(f"{e}bn1", w)
    in_ch = w
    for stage, (mult, n) in enumerate(zip(STAGE_MULTIPLIERS, config.blocks), start=1):
        out_ch = w * mult
        for b in range(n):
            p = f"{e}layer{stage}.{b}"
            shapes[f"{p}.conv1.weight"] = (out_ch, in_ch if b == 0 else out_ch, 3, 3)
            shapes |= bn(f"{p}.bn1", out_ch)
            shapes[f"{p}.conv2.weight"] = (out_ch, out_ch, 3, 3)
            shapes |= bn(f"{p}.bn2", out_ch)
            if b == 0 and (stage > 1 or in_ch != out_ch):
                shapes[f"{p}.downsample.0.weight"] = (out_ch, in_ch, 1, 1)
                shapes |= bn(f"{p}.downsample.1", out_ch)
        in_ch = out_ch
    t, hidden, out = TRANSFORM_PREFIX, config.mlp_hidden, config.embed_dim
    shapes |= {f"{t}sequential.0.weight": (hidden, in_ch), f"{t}sequential.0.bias": (hidden,),
               f"{t}sequential.3.weight": (out, hidden), f"{t}sequential.3.bias": (out,)}
    return shapes


def official_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every audio entry of the official ``Wav2CLIP.pt`` (ResNet-18, 64..512 channels,
    ``n_fft`` 512, MLP 512-512-512): 125 tensors; 11,695,552 parameters (trunk 11,170,240, head 525,312) plus
    the window and the BatchNorm statistics."""
    return _state_dict_shapes(Wav2ClipConfig())


def config_from_state_dict(state: Mapping[str, torch.Tensor], **frontend) -> Wav2ClipConfig:
    """Architecture read off the tensor shapes of a checkpoint; ``frontend`` (``sample_rate``, ``hop``,
    ``dropout``, ``per_clip_norm``) supplies what the official format does not record."""
    e, t = ENCODER_PREFIX, TRANSFORM_PREFIX
    try:
        blocks = tuple(len({k.split(".")[2] for k in state if k.startswith(f"{e}layer{i}.")}) for i in range(1, 5))
        return Wav2ClipConfig(n_fft=state[f"{e}spectrogram.window"].shape[0],
                              base_width=state[f"{e}conv1.weight"].shape[0], blocks=blocks,
                              mlp_hidden=state[f"{t}sequential.0.weight"].shape[0],
                              embed_dim=state[f"{t}sequential.3.weight"].shape[0], **frontend)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"not a Wav2CLIP state dict: {err}") from err


def _read(path: Path, allow_pickle: bool) -> dict:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: cannot be read with torch.load(weights_only=True); if you trust the file, pass "
                         f"allow_pickle=True ({err})") from err
    # The released Wav2CLIP.pt is flat; a PyTorch Lightning checkpoint of the training run nests it in "state_dict".
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a flat {{key: tensor}} Wav2CLIP checkpoint, got {type(obj).__name__}")
    return dict(obj)


def load_wav2clip(path: str | Path, device: str | torch.device = "cpu", config: Wav2ClipConfig | None = None, *,
                  allow_pickle: bool = False) -> Wav2Clip:
    """Load the official ``Wav2CLIP.pt`` (or a file written by :func:`save_wav2clip`) strictly, in eval mode.

    Keys outside ``audio_encoder.``/``audio_transform.`` that belong to the official training module are ignored
    (as ``wav2clip.get_model`` ignores them); any other missing, unexpected or mis-shaped tensor is an error naming
    the file. Without ``config`` the architecture comes from the shapes and the front end is the official one.
    Missing ``num_batches_tracked`` counters are tolerated, as ``nn.BatchNorm2d`` itself tolerates them in
    legacy state dicts; they do not affect the forward pass.
    """
    path = Path(path)
    tensors = _read(path, allow_pickle)
    state = {k: v for k, v in tensors.items() if k.startswith((ENCODER_PREFIX, TRANSFORM_PREFIX))}
    foreign = sorted(k for k in tensors if k not in state and not k.startswith(TRAINING_ONLY_PREFIXES))
    if foreign:
        raise ValueError(f"{path}: unexpected keys in Wav2CLIP checkpoint: {foreign}")
    if config is None:
        try:
            config = config_from_state_dict(state)
        except ValueError as err:
            raise ValueError(f"{path}: {err.args[0]}") from err
    model = Wav2Clip(config)
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith(".num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                  for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"{path}: Wav2CLIP checkpoint does not match {config}: missing {missing}, "
                       f"unexpected {unexpected}, shape mismatches {mismatched}")
    for k in expected.keys() - state.keys():  # only num_batches_tracked, see above
        state[k] = expected[k]
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def save_wav2clip(model: Wav2Clip, path: str | Path) -> None:
    """Write ``model`` as the official release does: a flat ``{key: tensor}`` dict with ``torch.save``.

    The format records no config; :func:`load_wav2clip` rebuilds the architecture from the shapes, and a model
    with a non-official ``sample_rate`` or ``hop`` needs its config passed to the loader again.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tensors, tmp)
    tmp.replace(path)


__all__ = ["Wav2Clip", "Wav2ClipConfig", "config_from_state_dict", "load_wav2clip", "official_state_dict_shapes",
           "save_wav2clip"]
