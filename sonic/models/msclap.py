"""Microsoft CLAP 2022 audio encoder (Elizalde et al., ICASSP 2023), the encoder of the authors' released model
(``audio_encoder.kind: msclap_2022``; docs/paper-profile.md#released-weights).

Our own implementation of the audio branch in the ``msclap`` package (1.3.x, ``msclap/models/audio.py`` ``Cnn14``,
``msclap/models/clap.py`` ``AudioEncoder`` / ``Projection``) and in the authors' copy of it
(``BurakCanBiner/SonicDiffusion``: ``CLAP/src/``), written so that the audio keys of ``CLAP_weights_2022.pth``
load into it strictly without torchaudio, ``msclap`` (which pins numpy<2, pandas<3, transformers<5) or a network
connection::

    waveform (B, N), 44.1 kHz mono, 10 s
      -> |STFT|^2  window 1024 (hann), hop 320, centred, reflect padding   torchlibrosa Spectrogram
      -> 64 mel bins 50 .. 14000 Hz, 10 log10(max(x, 1e-10))              torchlibrosa LogmelFilterBank
      -> BatchNorm over the mel bins
      -> Cnn14 (PANNs): six blocks of two 3x3 conv + BN + ReLU (64 .. 2048 channels), 2x2 average pooling after
         the first five; mean over frequency; max + mean over time                                 (B, 2048)
      -> ReLU(Linear(2048, 2048))                                                                   (B, 2048)
      -> projection: e1 = Linear(2048, 1024); LayerNorm(e1 + Linear(1024, 1024)(GELU(e1)))          (B, 1024)
      -> L2-normalised (the wrapper's get_audio_embeddings)

Preprocessing as the authors' wrapper (``CLAPWrapper.load_audio_into_tensor`` with their ``duration: 10``; the
``msclap`` package's own 2022 config says 5 s): channels averaged to mono (the feature extractor already loads
mono), clips shorter than 10 s tiled (repeated, then cut to 10 s). **Deviation**: longer clips are cropped to
their *first* 10 s, where the wrapper takes a random 10 s window; a clip's embedding is then a function of the
clip (as the LAION backend keeps the first 10 s too).

The checkpoint is ``{"model": state_dict, ...}`` of the whole CLAP (audio and BERT text branch). Keys under
``audio_encoder.`` load strictly (a missing, unexpected or mis-shaped key is an error naming it); the text
branch and the logit scale are not needed for audio embeddings and are counted in the log. torchlibrosa keeps
its STFT kernels and mel filters as parameters, so they are keys of the checkpoint; here they are recomputed
from the settings and the checkpoint's copies must agree with them (a mismatch means different front-end
settings, an error). The file stores no config: channel widths and sizes come from the tensor shapes; sample
rate, hop, fmin and fmax are the official ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sonic.audio import apply_gain
from sonic.models.io import read_torch_file, state_mismatch

log = logging.getLogger(__name__)

PREFIX = "audio_encoder."  # the audio branch inside the checkpoint's "model" dict
FRONT_END_KEYS = ("base.spectrogram_extractor.stft.conv_real.weight",
                  "base.spectrogram_extractor.stft.conv_imag.weight", "base.logmel_extractor.melW")
NUM_BLOCKS = 6


@dataclass(frozen=True)
class MsClapConfig:
    """The 2022 checkpoint's settings (``msclap/configs/config_2022.yml``; ``duration`` as the authors' copy)."""

    sample_rate: int = 44100
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: int = 50
    fmax: int = 14000
    classes_num: int = 527  # AudioSet head (kept for the checkpoint's keys; unused for embeddings)
    out_emb: int = 2048
    d_proj: int = 1024
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    duration: float = 10.0  # seconds: shorter clips are tiled, longer ones cut to their first `duration` seconds

    def __post_init__(self) -> None:
        if len(self.widths) != NUM_BLOCKS:
            raise ValueError(f"msclap_2022: Cnn14 has {NUM_BLOCKS} conv blocks, got widths {self.widths}")

    def to_dict(self) -> dict:
        return asdict(self)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each with BatchNorm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """The PANNs Cnn14 trunk with its log-mel front end; ``forward`` returns the 2048-d clip embedding."""

    def __init__(self, config: MsClapConfig):
        super().__init__()
        from torchlibrosa.stft import LogmelFilterBank, Spectrogram

        c = config
        self.spectrogram_extractor = Spectrogram(
            n_fft=c.window_size, hop_length=c.hop_size, win_length=c.window_size, window="hann", center=True,
            pad_mode="reflect", freeze_parameters=True)
        self.logmel_extractor = LogmelFilterBank(
            sr=c.sample_rate, n_fft=c.window_size, n_mels=c.mel_bins, fmin=c.fmin, fmax=c.fmax, ref=1.0, amin=1e-10,
            top_db=None, freeze_parameters=True)
        self.bn0 = nn.BatchNorm2d(c.mel_bins)
        channels = (1,) + tuple(c.widths)
        for i in range(NUM_BLOCKS):
            setattr(self, f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1]))
        self.fc1 = nn.Linear(c.widths[-1], c.out_emb)
        self.fc_audioset = nn.Linear(c.out_emb, c.classes_num)

    def log_mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, 1, frames, mel_bins) log-mel power in dB."""
        return self.logmel_extractor(self.spectrogram_extractor(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.log_mel(wave)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
        for i in range(NUM_BLOCKS):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < NUM_BLOCKS - 1 else 1)
        x = x.mean(dim=3)  # over frequency: (B, C, frames)
        x = x.max(dim=2).values + x.mean(dim=2)
        return F.relu(self.fc1(x))


class Projection(nn.Module):
    """CLAP's projection into the joint space: a residual two-layer map with LayerNorm."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.linear2(F.gelu(e1)))


class MsClapAudio(nn.Module):
    """The audio branch (``CLAP.audio_encoder``): Cnn14 ``base`` + ``projection``; its keys are the checkpoint's
    ``audio_encoder.*`` keys without that prefix."""

    def __init__(self, config: MsClapConfig | None = None):
        super().__init__()
        self.config = config or MsClapConfig()
        self.base = Cnn14(self.config)
        self.projection = Projection(self.config.out_emb, self.config.d_proj)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms -> (B, d_proj) projected embeddings (not normalised)."""
        return self.projection(self.base(wave))


def fit_duration(wave: np.ndarray, samples: int) -> np.ndarray:
    """Tile a shorter clip (repeat, then cut) or keep the first ``samples`` of a longer one. Mono only: a
    multi-channel array is refused (flattening it would interleave the channels; :func:`sonic.audio.load_audio`
    averages them)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"msclap_2022: expected a mono waveform (1-D), got shape {wave.shape}; average the channels "
                         "first (sonic.audio.load_audio does)")
    if len(wave) == 0:
        raise ValueError("msclap_2022: empty waveform")
    if len(wave) < samples:
        wave = np.tile(wave, int(np.ceil(samples / len(wave))))
    return wave[:samples]


class MsClapAudioEncoder:
    """The :class:`~sonic.models.audio_encoder.AudioEncoder` protocol on :class:`MsClapAudio`: L2-normalised
    1024-d embeddings of 44.1 kHz mono clips, preprocessed as the authors' wrapper (module docstring)."""

    def __init__(self, model: MsClapAudio, device: str | torch.device = "cpu"):
        self.model = model.eval().requires_grad_(False).to(device)
        self.device = torch.device(device)
        self.sample_rate = model.config.sample_rate
        self.embed_dim = model.config.d_proj

    @torch.no_grad()
    def embed(self, waveforms: Sequence[np.ndarray], gain_db: float = 0.0) -> torch.Tensor:
        samples = int(round(self.model.config.duration * self.sample_rate))
        waves = [apply_gain(fit_duration(w, samples), gain_db) for w in waveforms]
        x = torch.from_numpy(np.stack(waves)).to(self.device)
        return F.normalize(self.model(x).float(), dim=-1).cpu()


# ---- the checkpoint ---------------------------------------------------------------------------------------------
def official_state_dict_shapes(config: MsClapConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the audio branch as ``CLAP_weights_2022.pth`` stores it (``audio_encoder.`` prefix), from
    the module definition of ``msclap`` (torchlibrosa front end, Cnn14, Projection) at the given sizes."""
    c = config or MsClapConfig()
    n_freq = c.window_size // 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "base.spectrogram_extractor.stft.conv_real.weight": (n_freq, 1, c.window_size),
        "base.spectrogram_extractor.stft.conv_imag.weight": (n_freq, 1, c.window_size),
        "base.logmel_extractor.melW": (n_freq, c.mel_bins),
    }

    def batch_norm(prefix: str, n: int) -> None:
        shapes.update({f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
                       f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()})

    batch_norm("base.bn0", c.mel_bins)
    channels = (1,) + tuple(c.widths)
    for i in range(NUM_BLOCKS):
        block = f"base.conv_block{i + 1}"
        shapes[f"{block}.conv1.weight"] = (channels[i + 1], channels[i], 3, 3)
        shapes[f"{block}.conv2.weight"] = (channels[i + 1], channels[i + 1], 3, 3)
        batch_norm(f"{block}.bn1", channels[i + 1])
        batch_norm(f"{block}.bn2", channels[i + 1])
    shapes |= {
        "base.fc1.weight": (c.out_emb, c.widths[-1]), "base.fc1.bias": (c.out_emb,),
        "base.fc_audioset.weight": (c.classes_num, c.out_emb), "base.fc_audioset.bias": (c.classes_num,),
        "projection.linear1.weight": (c.d_proj, c.out_emb), "projection.linear2.weight": (c.d_proj, c.d_proj),
        "projection.layer_norm.weight": (c.d_proj,), "projection.layer_norm.bias": (c.d_proj,),
    }
    return {PREFIX + k: v for k, v in shapes.items()}


def config_from_state(audio: Mapping[str, torch.Tensor], base: MsClapConfig | None = None) -> MsClapConfig:
    """Sizes read from the tensor shapes of an audio state dict (keys without the prefix)."""
    base = base or MsClapConfig()
    try:
        widths = tuple(int(audio[f"base.conv_block{i + 1}.conv1.weight"].shape[0]) for i in range(NUM_BLOCKS))
        return replace(
            base, widths=widths, mel_bins=int(audio["base.bn0.weight"].shape[0]),
            window_size=int(audio["base.spectrogram_extractor.stft.conv_real.weight"].shape[-1]),
            out_emb=int(audio["base.fc1.weight"].shape[0]), classes_num=int(audio["base.fc_audioset.weight"].shape[0]),
            d_proj=int(audio["projection.linear1.weight"].shape[0]))
    except KeyError as err:
        raise ValueError(f"msclap_2022: the checkpoint's audio branch lacks {err.args[0]!r}") from err


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The full ``model`` state dict of a CLAP checkpoint (``{"model": ...}``, or a bare state dict)."""
    data = read_torch_file(path, "CLAP_weights_2022.pth")
    state = data.get("model", data) if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping) or not any(str(k).startswith(PREFIX) for k in state):
        raise ValueError(f"{path}: no '{PREFIX}*' keys; not a Microsoft CLAP checkpoint")
    return dict(state)


def load_state(model: MsClapAudio, audio: Mapping[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Strict load of an audio state dict (keys without the prefix); the front-end tensors must equal ours."""
    expected = model.state_dict()
    missing, unexpected, wrong = state_mismatch(expected, audio)
    if missing or unexpected or wrong:
        raise ValueError(f"{where}: the audio branch does not match msclap_2022's layout: missing "
                       f"{[PREFIX + k for k in missing]}, unexpected {[PREFIX + k for k in unexpected]}, "
                       f"mis-shaped {[PREFIX + k for k in wrong]}")
    for key in FRONT_END_KEYS:
        gap = float((audio[key].float() - expected[key].float()).abs().max())
        if gap > 1e-4 * max(1.0, float(expected[key].abs().max())):
            raise ValueError(f"{where}: {PREFIX}{key} differs from the front end computed for {model.config} "
                             f"(max difference {gap:.3g}): the checkpoint was made with other STFT/mel settings")
    model.load_state_dict(audio, strict=True)


def load_msclap_2022(path: str | Path, device: str | torch.device = "cpu") -> MsClapAudioEncoder:
    """The encoder from ``CLAP_weights_2022.pth`` (or a miniature checkpoint saved the same way)."""
    state = read_checkpoint(path)
    audio = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    ignored = len(state) - len(audio)
    model = MsClapAudio(config_from_state(audio))
    load_state(model, audio, str(path))
    log.info("msclap_2022: loaded %d audio tensors from %s; %d text-branch and other tensors not needed for audio "
             "embeddings ignored", len(audio), path, ignored)
    return MsClapAudioEncoder(model, device)


def save_checkpoint(path: str | Path, model: MsClapAudio, text_state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` in the official layout (``{"model": {"audio_encoder.*": ..., <text branch>}}``): for tests
    and paper-size rehearsals with random weights."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()} | dict(text_state or {})
    torch.save({"model": state}, path)
    return path
