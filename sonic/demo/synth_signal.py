"""Drawing and sound primitives of the synthetic world (docs/data.md), all vectorised numpy and all seeded
explicitly.

Pictures are (H, W, 3) float32 in 0..255 on a fixed 128x128 canvas; masks are (H, W) float32 in [0, 1]. Sounds are
float64 mono arrays at an explicit sample rate. Nothing here reads a global random state.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len

H = W = 128
YY, XX = np.mgrid[0:H, 0:W].astype(np.float32)  # pixel row and column coordinates


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the stable (CRC32) hashes of ``keys``."""
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


# ---- pictures -------------------------------------------------------------------------------------------
def vgrad(top, bottom, y0: float = 0, y1: float = H) -> np.ndarray:
    """Vertical colour gradient from ``top`` at row y0 to ``bottom`` at row y1 (clamped outside)."""
    f = np.clip((YY - y0) / max(y1 - y0, 1), 0, 1)[..., None]
    return (np.asarray(top, np.float32) * (1 - f) + np.asarray(bottom, np.float32) * f).astype(np.float32)


def over(img: np.ndarray, mask: np.ndarray, colour, alpha: float = 1.0) -> None:
    """Paint ``colour`` over ``img`` in place where ``mask`` (times ``alpha``) is set."""
    a = (np.asarray(mask, np.float32) * alpha)[..., None]
    img += (np.asarray(colour, np.float32) - img) * a


def modulate(img: np.ndarray, texture: np.ndarray, amount: float, region: np.ndarray | None = None) -> None:
    """Multiply ``img`` by ``1 + amount * texture`` (texture in [-1, 1]) inside ``region``, in place."""
    m = amount * texture if region is None else amount * texture * region
    img *= (1 + m)[..., None]


def rows_below(y: float, soft: float = 1.0) -> np.ndarray:
    return np.clip((YY - y) / soft + 0.5, 0, 1)


def ellipse(cx: float, cy: float, rx: float, ry: float | None = None) -> np.ndarray:
    """Filled ellipse with a one-pixel soft edge."""
    ry = rx if ry is None else ry
    d = np.sqrt(((XX - cx) / rx) ** 2 + ((YY - cy) / ry) ** 2)
    return np.clip((1 - d) * min(rx, ry) + 0.5, 0, 1)


def ring(cx: float, cy: float, r: float, width: float) -> np.ndarray:
    d = np.hypot(XX - cx, YY - cy)
    return np.clip(width / 2 - np.abs(d - r) + 0.5, 0, 1)


def segment(x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
    """Line segment of the given width with a one-pixel soft edge (computed inside its bounding box only)."""
    m = np.zeros((H, W), np.float32)
    pad = width / 2 + 1
    r0, r1 = max(int(min(y0, y1) - pad), 0), min(int(max(y0, y1) + pad) + 1, H)
    c0, c1 = max(int(min(x0, x1) - pad), 0), min(int(max(x0, x1) + pad) + 1, W)
    if r0 >= r1 or c0 >= c1:
        return m
    xx, yy = XX[r0:r1, c0:c1], YY[r0:r1, c0:c1]
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
    d = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
    m[r0:r1, c0:c1] = np.clip(width / 2 - d + 0.5, 0, 1)
    return m


def polyline(points, width: float) -> np.ndarray:
    m = np.zeros((H, W), np.float32)
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        np.maximum(m, segment(x0, y0, x1, y1, width), out=m)
    return m


def triangle(apex: tuple[float, float], half_base: float, height: float) -> np.ndarray:
    """Upright isosceles triangle (a tree) with its apex at ``apex``."""
    ax, ay = apex
    depth = (YY - ay) / height  # 0 at the apex, 1 at the base
    inside = (depth >= 0) & (depth <= 1) & (np.abs(XX - ax) <= depth * half_base)
    return inside.astype(np.float32)


def stripes(cycles: float, angle_deg: float, phase: float = 0.0, warp: np.ndarray | None = None) -> np.ndarray:
    """Sinusoidal stripes in [-1, 1] with ``cycles`` periods across the frame along direction ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    coord = (XX * np.cos(a) + YY * np.sin(a)) / W
    if warp is not None:
        coord = coord + warp
    return np.sin(2 * np.pi * cycles * coord + phase).astype(np.float32)


def value_noise(rng: np.random.Generator, cells: float) -> np.ndarray:
    """Smooth tileable noise in [-1, 1] with about ``cells`` features across the frame (its spatial frequency)."""
    c = max(1, int(round(cells)))
    g = rng.uniform(-1, 1, (c, c)).astype(np.float32)
    pos = np.arange(W, dtype=np.float32) * c / W
    i0 = np.floor(pos).astype(int)
    f = pos - i0
    f = f * f * (3 - 2 * f)
    i1 = (i0 + 1) % c
    rows = g[i0] * (1 - f)[:, None] + g[i1] * f[:, None]  # (H, c)
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def count(base: float, factor: float, minimum: int = 1) -> int:
    """Number of drawn elements for a class's base density times the clip's rhythm factor."""
    return max(minimum, int(round(base * factor)))


@dataclass
class Scene:
    """A clip's picture: a static image plus an optional layer that scrolls with constant velocity (rain, bubbles)."""

    static: np.ndarray  # (H, W, 3) float32, 0..255
    plain_mean: float  # mean of the flat class layout: the luminance the brightness gain is applied to
    moving: np.ndarray | None = None  # (H, W, 3) colour of the scrolling layer
    alpha: np.ndarray | None = None  # (H, W) its coverage
    velocity: tuple[float, float] = (0.0, 0.0)  # pixels per frame (dy, dx)

    def frame(self, i: int) -> np.ndarray:
        if self.moving is None:
            return self.static.copy()
        shift = (int(round(i * self.velocity[0])), int(round(i * self.velocity[1])))
        a = np.roll(self.alpha, shift, axis=(0, 1))[..., None]
        return self.static * (1 - a) + np.roll(self.moving, shift, axis=(0, 1)) * a


def layer() -> tuple[np.ndarray, np.ndarray]:
    """An empty scrolling layer (colour, alpha) to paint elements into."""
    return np.zeros((H, W, 3), np.float32), np.zeros((H, W), np.float32)


def paint_layer(colour_img: np.ndarray, alpha: np.ndarray, mask: np.ndarray, colour, a: float = 1.0) -> None:
    m = mask * a
    over(colour_img, (m > 0).astype(np.float32), colour)
    np.maximum(alpha, m, out=alpha)


def render(scene: Scene, n_frames: int, gain: float) -> np.ndarray:
    """Frames (T, H, W, 3) float32 whose mean luminance is the scene's plain mean times ``gain``."""
    first = scene.frame(0)
    k = gain * scene.plain_mean / max(float(first.mean()), 1e-3)
    out = np.empty((n_frames, H, W, 3), np.float32)
    out[0] = first * k
    for i in range(1, n_frames):
        out[i] = scene.frame(i) * k
    return out


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


# ---- sounds ---------------------------------------------------------------------------------------------
def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """Unit-RMS noise band-limited to [lo, hi] Hz with smooth (log-frequency logistic) edges."""
    n = max(int(n), 2)
    m = next_fast_len(n, real=True)  # FFT of a 5-smooth length, then cut: fast for any n
    spec = np.fft.rfft(rng.standard_normal(m))
    lf = np.log2(np.maximum(np.fft.rfftfreq(m, 1 / sr), 1.0))
    hi = min(hi, 0.45 * sr)
    mask = 1 / (1 + np.exp(-8 * (lf - np.log2(lo)))) / (1 + np.exp(8 * (lf - np.log2(hi))))
    x = np.fft.irfft(spec * mask, m)[:n]
    return x / (rms(x) + 1e-12)


def envelope(n: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Linear attack then exponential decay with time constant ``tau`` seconds."""
    t = np.arange(int(n)) / sr
    return np.minimum(t / attack, 1.0) * np.exp(-t / tau)


def chirp(sr: int, f0: float, f1: float, dur: float, tau: float) -> np.ndarray:
    """Exponential sine sweep from f0 to f1 Hz, decaying with ``tau`` (a bubble, a drip, a bird)."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    f = f0 * (f1 / f0) ** (t / dur)
    return np.sin(2 * np.pi * np.cumsum(f) / sr) * envelope(n, sr, tau, attack=0.001)


def resonance(sr: int, freqs, tau: float, dur: float, rng: np.random.Generator) -> np.ndarray:
    """Sum of decaying modes (an impact on a solid); higher modes decay faster."""
    n = int(dur * sr)
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k, f in enumerate(freqs):
        if f >= 0.45 * sr:
            continue
        tau_k = tau * np.sqrt(freqs[0] / f)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / tau_k) / np.sqrt(k + 1)
    return out * np.minimum(t / 0.0005, 1.0)


def event_times(rng: np.random.Generator, rate: float, duration: float, regularity: float = 0.0) -> np.ndarray:
    """Event onsets at ``rate`` per second in [0, duration): a Poisson process blended with a metronome."""
    period = 1.0 / rate
    t = rng.uniform(0.0, min(period, duration / 2))
    out = []
    while t < duration:
        out.append(t)
        t += period * (regularity + (1 - regularity) * rng.exponential())
    return np.asarray(out)


def add_at(out: np.ndarray, template: np.ndarray, t: float, sr: int, gain: float = 1.0) -> None:
    i = int(round(t * sr))
    j = min(len(out), i + len(template))
    if 0 <= i < len(out):
        out[i:j] += gain * template[: j - i]


def soft_limit(x: np.ndarray, knee: float = 0.5) -> np.ndarray:
    """Identity below ``knee``, a tanh shoulder above it that never reaches 1: monotone, so louder stays louder."""
    a = np.abs(x)
    over = a > knee
    y = x.copy()
    y[over] = np.sign(x[over]) * (knee + (1 - knee) * np.tanh((a[over] - knee) / (1 - knee)))
    return y


def at_rms(x: np.ndarray, db: float) -> np.ndarray:
    """Scale to an RMS level of ``db`` dBFS (before the soft limiter, which only touches peaks); float32."""
    return soft_limit(x * (10 ** (db / 20) / (rms(x) + 1e-12))).astype(np.float32)
