"""What the synthetic world looks and sounds like (docs/data.md): one visual and one sound signature per
class.

Within a class three continuous factors drive both picture and sound (the couplings the metrics rely on):

* **loudness -> brightness**: a clip's RMS level ``db`` (dBFS, in :data:`LOUDNESS_DB`) sets a gain on the mean
  luminance of its frames, :func:`brightness_gain` (quiet = dim, loud = bright);
* **pitch -> texture frequency**: one factor ``p`` (about 0.7-1.4) multiplies the class's characteristic
  frequencies (modes, noise bands, chirps, sung f0) and the spatial frequency of its texture (grain, ripples,
  flame tongues, clouds...);
* **rhythm -> pattern density**: one factor ``r`` (about 0.5-2) multiplies the event rate of the sound (hits,
  crackles, drops, bubbles, footsteps, sung notes) and the number of drawn elements (scuffs, sparks, streaks,
  bubbles, footprints, note dots).

Scenes are :class:`~sonic.demo.synth_signal.Scene` objects; sounds are float64 arrays, normalised to ``db`` by
the caller.
"""

from __future__ import annotations

import numpy as np

from sonic.demo import synth_signal as s

LOUDNESS_DB = (-36.0, -16.0)  # clip RMS range in dBFS
GAIN_RANGE = (0.5, 1.1)  # luminance gain at the quietest and loudest clip


def brightness_gain(db: float) -> float:
    """The loudness -> brightness coupling: a linear map of the clip's dB level onto :data:`GAIN_RANGE`."""
    u = (db - LOUDNESS_DB[0]) / (LOUDNESS_DB[1] - LOUDNESS_DB[0])
    return GAIN_RANGE[0] + (GAIN_RANGE[1] - GAIN_RANGE[0]) * float(np.clip(u, 0, 1))


def loudness_levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` dB levels stratified over :data:`LOUDNESS_DB` (one per stratum, shuffled), so clips of a class differ."""
    u = (rng.permutation(n) + 0.5 + 0.6 * (rng.random(n) - 0.5)) / n
    return LOUDNESS_DB[0] + u * (LOUDNESS_DB[1] - LOUDNESS_DB[0])


def pitch_factor(rng: np.random.Generator) -> float:
    return float(2 ** rng.uniform(-0.5, 0.5))


def rhythm_factor(rng: np.random.Generator, octaves: float = 1.0) -> float:
    return float(2 ** rng.uniform(-octaves, octaves))


def _dots(rng, n, colour_img, alpha, colour, x=(0, 128), y=(0, 128), radius=(1.0, 2.0), a=1.0):
    for _ in range(n):
        s.paint_layer(colour_img, alpha, s.ellipse(rng.uniform(*x), rng.uniform(*y), rng.uniform(*radius)), colour, a)


# ---- Landscape: nine scenes ----------------------------------------------------------------------------------
def _explosion(rng, p, r):
    img = s.vgrad((75, 60, 52), (48, 40, 34), 0, 100)
    s.over(img, s.rows_below(100), (42, 34, 26))
    cx, cy = 64 + rng.uniform(-12, 12), 80
    d2 = (s.XX - cx) ** 2 + (s.YY - cy) ** 2
    s.over(img, np.exp(-d2 / (2 * 22**2)), (255, 140, 35), 0.95)
    s.over(img, np.exp(-d2 / (2 * 9**2)), (255, 235, 160), 0.95)
    plain = float(img.mean())
    s.modulate(img, s.value_noise(rng, 6 * p), 0.35, 1 - np.exp(-d2 / (2 * 30**2)))  # billowing smoke
    for _ in range(s.count(16, r)):  # flying debris
        a, rad = rng.uniform(0, 2 * np.pi), rng.uniform(22, 55)
        s.over(img, s.ellipse(cx + rad * np.cos(a), cy - abs(rad * np.sin(a)), rng.uniform(1.2, 2.2)), (255, 190, 60))
    return s.Scene(img, plain)


def _fire_crackling(rng, p, r):
    img = s.vgrad((22, 10, 8), (50, 22, 10))
    u = s.XX / s.W
    height = (
        52
        + 14 * np.sin(2 * np.pi * 5 * p * u + rng.uniform(0, 6.3))
        + 6 * np.sin(2 * np.pi * 11 * p * u + rng.uniform(0, 6.3))
    )  # flame tongues: their count is the pitch
    depth = np.clip((s.YY - (s.H - height)) / height, 0, 1)  # 0 at the tip, 1 at the base
    flame = np.clip((s.YY - (s.H - height)) / 4, 0, 1)
    colour = np.stack([255 + 0 * depth, 70 + 170 * depth, 20 + 90 * depth**2], -1)
    img += (colour - img) * flame[..., None]
    plain = float(img.mean())
    col, a = s.layer()
    _dots(rng, s.count(26, r), col, a, (255, 220, 90), y=(5, 80), radius=(0.8, 1.6))  # sparks rise
    return s.Scene(img, plain, col, a, (-1.5, 0.3))


def _raining(rng, p, r):
    img = s.vgrad((112, 118, 130), (150, 155, 162), 0, 88)
    s.over(img, s.rows_below(88), (58, 62, 58))
    plain = float(img.mean())
    s.modulate(img, s.value_noise(rng, 4 * p), 0.15, 1 - s.rows_below(88))  # clouds
    s.modulate(img, s.stripes(14 * p, 90, warp=0.03 * s.value_noise(rng, 3)), 0.3, s.rows_below(88))  # ripples
    col, a = s.layer()
    for _ in range(s.count(70, r)):
        x, y = rng.uniform(0, 128), rng.uniform(0, 128)
        s.paint_layer(col, a, s.segment(x, y, x + 3, y + 11, 1.0), (215, 220, 230), 0.65)
    return s.Scene(img, plain, col, a, (6.0, 2.0))


def _splashing_water(rng, p, r):
    img = s.vgrad((150, 190, 228), (195, 218, 236), 0, 50)
    s.over(img, s.rows_below(50), (28, 95, 172))
    s.over(img, s.rows_below(50) * (s.YY - 50) / 78, (12, 55, 125))
    plain = float(img.mean())
    s.modulate(img, s.stripes(12 * p, 90, warp=0.04 * s.value_noise(rng, 4)), 0.3, s.rows_below(50))  # waves
    for _ in range(s.count(6, r)):  # splash crowns
        cx, cy = rng.uniform(12, 116), rng.uniform(58, 110)
        s.over(img, s.ellipse(cx, cy, 9, 3), (235, 245, 255), 0.9)
        for _ in range(10):
            a, d = rng.uniform(np.pi, 2 * np.pi), rng.uniform(5, 16)
            s.over(img, s.ellipse(cx + d * np.cos(a), cy + d * np.sin(a), rng.uniform(0.8, 2.0)), (240, 248, 255))
    return s.Scene(img, plain)


def _squishing_water(rng, p, r):
    img = s.vgrad((128, 92, 60), (100, 70, 45))
    s.over(img, s.ellipse(64, 82, 48, 26), (78, 68, 58))
    s.over(img, s.ellipse(52, 74, 16, 4), (150, 140, 125), 0.6)  # wet sheen
    plain = float(img.mean())
    s.modulate(img, s.value_noise(rng, 9 * p), 0.3)
    for _ in range(s.count(10, r)):  # squelch pits
        x, y = rng.uniform(22, 106), rng.uniform(64, 100)
        s.over(img, s.ring(x, y, rng.uniform(2, 4), 1.5), (45, 35, 28))
    return s.Scene(img, plain)


def _thunder(rng, p, r):
    img = s.vgrad((28, 26, 62), (58, 52, 98), 0, 110)
    s.over(img, s.rows_below(110), (22, 22, 30))
    plain = float(img.mean())
    s.modulate(img, s.value_noise(rng, 5 * p), 0.4, 1 - s.rows_below(110))  # storm clouds
    for _ in range(s.count(2, r)):  # lightning bolts
        x, pts = rng.uniform(16, 112), []
        for y in np.linspace(0, 110, 9):
            pts.append((x, y))
            x += rng.uniform(-9, 9)
        s.over(img, s.polyline(pts, 7), (170, 170, 255), 0.35)
        s.over(img, s.polyline(pts, 2.2), (245, 245, 255))
    return s.Scene(img, plain)


def _underwater_bubbling(rng, p, r):
    img = s.vgrad((25, 128, 152), (6, 34, 86))
    plain = float(img.mean())
    s.modulate(img, np.abs(s.value_noise(rng, 6 * p)) * 2 - 1, 0.18)  # caustics
    col, a = s.layer()
    for _ in range(s.count(18, r)):  # smaller bubbles sing higher
        x, y, rad = rng.uniform(0, 128), rng.uniform(0, 128), rng.uniform(2.0, 5.0) / p
        s.paint_layer(col, a, s.ellipse(x, y, rad), (120, 200, 225), 0.25)
        s.paint_layer(col, a, s.ring(x, y, rad, 1.2), (225, 242, 255), 0.9)
    return s.Scene(img, plain, col, a, (-2.0, 0.0))


def _waterfall_burbling(rng, p, r):
    img = s.vgrad((72, 98, 62), (48, 68, 44))
    half = 16 + s.YY / 128 * 10
    column = np.clip(half - np.abs(s.XX - 64) + 0.5, 0, 1)
    s.over(img, column, (205, 225, 240))
    s.over(img, s.rows_below(108), (120, 170, 200))
    plain = float(img.mean())
    s.modulate(img, s.stripes(16 * p, 0), 0.2, column)  # falling streaks
    s.modulate(img, s.value_noise(rng, 5 * p), 0.3, 1 - column)  # rock faces
    col, a = s.layer()
    _dots(rng, s.count(40, r), col, a, (250, 252, 255), x=(52, 76), radius=(0.8, 1.8))  # foam
    return s.Scene(img, plain, col, a, (3.0, 0.0))


def _wind_noise(rng, p, r):
    img = s.vgrad((172, 192, 214), (205, 215, 226), 0, 70)
    s.over(img, s.rows_below(70), (150, 166, 82))
    s.over(img, s.rows_below(70) * (s.YY - 70) / 58, (108, 128, 52))
    plain = float(img.mean())
    s.modulate(img, s.stripes(22 * p, 70, warp=0.02 * s.value_noise(rng, 3)), 0.3, s.rows_below(70))  # bent blades
    col, a = s.layer()
    for _ in range(s.count(8, r)):  # gust streaks
        x0, y0 = rng.uniform(0, 128), rng.uniform(8, 60)
        pts = [(x0 + k * 4, y0 + 2.5 * np.sin(k * 0.8)) for k in range(9)]
        s.paint_layer(col, a, s.polyline(pts, 1.4), (248, 250, 252), 0.7)
    return s.Scene(img, plain, col, a, (0.0, 4.0))


LANDSCAPE_SCENES = {
    "explosion": _explosion,
    "fire crackling": _fire_crackling,
    "raining": _raining,
    "splashing water": _splashing_water,
    "squishing water": _squishing_water,
    "thunder": _thunder,
    "underwater bubbling": _underwater_bubbling,
    "waterfall burbling": _waterfall_burbling,
    "wind noise": _wind_noise,
}


# ---- Landscape: nine sounds --------------------------------------------------------------------------------
def _bank(k, make):
    return [make() for _ in range(k)]


def _events(rng, out, sr, rate, bank, gain=(0.5, 1.0), regularity=0.0):
    for t in s.event_times(rng, rate, len(out) / sr, regularity):
        s.add_at(out, bank[rng.integers(len(bank))], t, sr, rng.uniform(*gain))


def _snd_explosion(rng, n, sr, p, r):
    x = 0.12 * s.band_noise(rng, n, sr, 25, 160 * p)

    def boom():
        m = int(1.6 * sr)
        body = s.band_noise(rng, m, sr, 30, 260 * p) * s.envelope(m, sr, 0.35, 0.005)
        crack = s.band_noise(rng, int(0.1 * sr), sr, 600, 7000) * s.envelope(int(0.1 * sr), sr, 0.02)
        body[: len(crack)] += 0.5 * crack
        return body

    _events(rng, x, sr, 0.4 * r, _bank(3, boom))
    return x


def _snd_fire_crackling(rng, n, sr, p, r):
    x = 0.25 * s.band_noise(rng, n, sr, 90, 900 * p)

    def crackle():
        m = int(0.012 * sr)
        return 1.5 * s.band_noise(rng, m, sr, 1500 * p, 7000 * p) * s.envelope(m, sr, 0.002, 0.0003)

    _events(rng, x, sr, 14 * r, _bank(8, crackle), gain=(0.2, 1.0))
    return x


def _snd_raining(rng, n, sr, p, r):
    x = s.band_noise(rng, n, sr, 1800 * p, 11000)
    drops = _bank(6, lambda: 2.5 * s.chirp(sr, 3200 * p * rng.uniform(0.8, 1.2), 2200 * p, 0.02, 0.006))
    _events(rng, x, sr, 25 * r, drops, gain=(0.3, 1.0))
    return x


def _snd_splashing_water(rng, n, sr, p, r):
    x = 0.2 * s.band_noise(rng, n, sr, 300, 3000 * p)

    def splash():
        m = int(0.4 * sr)
        y = 2 * s.band_noise(rng, m, sr, 400 * p, 5000 * p) * s.envelope(m, sr, 0.08, 0.004)
        for _ in range(3):
            f0 = 900 * p * rng.uniform(0.7, 1.3)
            s.add_at(y, 1.5 * s.chirp(sr, f0, 1.6 * f0, 0.05, 0.02), rng.uniform(0.05, 0.3), sr)
        return y

    _events(rng, x, sr, 1.2 * r, _bank(4, splash), regularity=0.4)
    return x


def _snd_squishing_water(rng, n, sr, p, r):
    x = 0.05 * s.band_noise(rng, n, sr, 100, 1200)

    def squelch():
        m = int(0.25 * sr)
        y = 2 * s.band_noise(rng, m, sr, 150 * p, 900 * p) * s.envelope(m, sr, 0.06, 0.02)
        y[: int(0.15 * sr)] += 1.5 * s.chirp(sr, 360 * p, 170 * p, 0.15, 0.05)
        return y

    _events(rng, x, sr, 1.8 * r, _bank(4, squelch), regularity=0.5)
    return x


def _snd_thunder(rng, n, sr, p, r):
    x = 0.15 * s.band_noise(rng, n, sr, 25, 150 * p)

    def clap():
        m = int(3.0 * sr)
        t = np.arange(m) / sr
        y = 2 * s.band_noise(rng, m, sr, 30, 300 * p) * s.envelope(m, sr, 0.8, 0.05) * (1 + 0.5 * np.sin(9 * t))
        crack = s.band_noise(rng, int(0.06 * sr), sr, 800, 8000) * s.envelope(int(0.06 * sr), sr, 0.015)
        y[: len(crack)] += 2 * crack
        return y

    _events(rng, x, sr, 0.25 * r, _bank(2, clap))
    return x


def _snd_underwater_bubbling(rng, n, sr, p, r):
    x = 0.25 * s.band_noise(rng, n, sr, 40, 400)

    def bubble():
        f0 = 700 * p * rng.uniform(0.7, 1.4)
        return 2 * s.chirp(sr, f0, 1.6 * f0, 0.05, 0.02)

    _events(rng, x, sr, 12 * r, _bank(8, bubble), gain=(0.3, 1.0))
    return x


def _snd_waterfall_burbling(rng, n, sr, p, r):
    x = s.band_noise(rng, n, sr, 80, 4000 * p)
    gurgles = _bank(6, lambda: 1.5 * s.chirp(sr, 300 * p * rng.uniform(0.8, 1.2), 450 * p, 0.08, 0.03))
    _events(rng, x, sr, 6 * r, gurgles, gain=(0.3, 1.0))
    return x


def _snd_wind_noise(rng, n, sr, p, r):
    t = np.arange(n) / sr
    gusts = np.full(n, 0.3)
    for g in s.event_times(rng, 0.35 * r, n / sr, 0.3):
        gusts += np.exp(-0.5 * ((t - g) / 0.8) ** 2)
    x = s.band_noise(rng, n, sr, 250 * p, 1000 * p) * gusts
    return x + 0.15 * np.sin(2 * np.pi * 900 * p * t) * gusts


LANDSCAPE_SOUNDS = {
    "explosion": _snd_explosion,
    "fire crackling": _snd_fire_crackling,
    "raining": _snd_raining,
    "splashing water": _snd_splashing_water,
    "squishing water": _snd_squishing_water,
    "thunder": _snd_thunder,
    "underwater bubbling": _snd_underwater_bubbling,
    "waterfall burbling": _snd_waterfall_burbling,
    "wind noise": _snd_wind_noise,
}


# ---- Into the Wild: a hiking trail with Snow / Forest / Rain tags ---------------------------------------------
def itw_scene(rng, tags: set[str], p: float, r: float) -> s.Scene:
    if "Rain" in tags:
        img = s.vgrad((102, 108, 118), (150, 152, 158), 0, 56)
    elif "Snow" in tags:
        img = s.vgrad((175, 186, 202), (216, 220, 228), 0, 56)
    else:
        img = s.vgrad((88, 144, 216), (176, 206, 236), 0, 56)
    ground = s.rows_below(56)
    hills = np.clip(56 - (44 + 5 * np.sin(s.XX / 11 + rng.uniform(0, 6)) - s.YY), 0, 1) * (1 - ground)
    s.over(img, hills, (120, 130, 150) if "Snow" not in tags else (200, 205, 220))
    g_colour = (222, 227, 236) if "Snow" in tags else (56, 86, 40) if "Forest" in tags else (106, 140, 60)
    s.over(img, ground, g_colour)
    half = 3 + (s.YY - 56) / 72 * 32
    path = np.clip(half - np.abs(s.XX - 64) + 0.5, 0, 1) * ground
    s.over(img, path, (205, 205, 212) if "Snow" in tags else (138, 108, 76))
    if "Forest" in tags:
        for k in range(8):
            side = -1 if k % 2 else 1
            depth = (k // 2) / 4  # far trees are small and close to the path
            base_y = 58 + 60 * depth
            x = 64 + side * (20 + 38 * depth) + rng.uniform(-3, 3)
            h = 22 + 50 * depth
            s.over(img, s.segment(x, base_y - 0.3 * h, x, base_y, 2 + 3 * depth), (70, 50, 30))
            s.over(img, s.triangle((x, base_y - h), 5 + 12 * depth, 0.8 * h), (24, 62, 30))
            if "Snow" in tags:
                s.over(img, s.triangle((x, base_y - h), 2 + 5 * depth, 0.3 * h), (235, 240, 245))
    plain = float(img.mean())
    s.modulate(img, s.value_noise(rng, 10 * p), 0.22, ground * (1 - path))  # ground texture ~ pitch
    s.modulate(img, s.stripes(14 * p, 90), 0.1, path)
    for k in range(s.count(6, r)):  # footprints ~ pace
        y = 66 + 58 * (k + 0.5) / s.count(6, r)
        x = 64 + (-1) ** k * (2 + (y - 56) / 72 * 9)
        s.over(img, s.ellipse(x, y, 1 + (y - 56) / 72 * 2.5, 1 + (y - 56) / 72 * 4), (70, 58, 45), 0.8)
    if "Rain" in tags or "Snow" in tags:
        col, a = s.layer()
        if "Rain" in tags:
            for _ in range(50):
                x, y = rng.uniform(0, 128), rng.uniform(0, 128)
                s.paint_layer(col, a, s.segment(x, y, x + 2, y + 9, 1.0), (210, 215, 225), 0.6)
            return s.Scene(img, plain, col, a, (6.0, 1.0))
        _dots(rng, 60, col, a, (250, 250, 255), radius=(0.7, 1.5))
        return s.Scene(img, plain, col, a, (1.5, 0.5))
    return s.Scene(img, plain)


def itw_sound(rng, n, sr, tags: set[str], p: float, r: float) -> np.ndarray:
    x = 0.15 * s.band_noise(rng, n, sr, 80, 600)  # wind on the microphone
    if "Rain" in tags:
        x += 0.6 * s.band_noise(rng, n, sr, 2000, 10000)
    if "Snow" in tags:

        def step():
            m = int(0.14 * sr)
            return 2.5 * s.band_noise(rng, m, sr, 1500 * p, 7000 * p) * s.envelope(m, sr, 0.05, 0.01)

    else:

        def step():
            m = int(0.1 * sr)
            return 2.5 * s.band_noise(rng, m, sr, 120 * p, 1500 * p) * s.envelope(m, sr, 0.035, 0.003)

    _events(rng, x, sr, 1.8 * r, _bank(4, step), gain=(0.7, 1.0), regularity=0.85)
    if "Forest" in tags:

        def bird():
            y = np.zeros(int(0.5 * sr))
            for k in range(rng.integers(2, 4)):
                s.add_at(y, s.chirp(sr, 2600 * p, 3800 * p, 0.1, 0.05), 0.13 * k, sr)
            return y

        _events(rng, x, sr, 0.7, _bank(3, bird), gain=(0.3, 0.8))
    return x


# ---- Greatest Hits: a drumstick on a surface ----------------------------------------------------------------
GH_MATERIALS = {  # colour, texture, modes (Hz at p=1), decay (s), noise band (Hz), noise share, reactions
    "wood": dict(
        colour=(150, 100, 58),
        modes=(190, 460, 980),
        tau=0.05,
        band=(300, 3000),
        noise=0.35,
        reactions=("static", "static", "rigid-motion"),
    ),
    "metal": dict(
        colour=(118, 122, 132),
        modes=(520, 1370, 2650, 4100),
        tau=0.5,
        band=(2000, 9000),
        noise=0.05,
        reactions=("static", "static", "rigid-motion"),
    ),
    "water": dict(colour=(45, 95, 155), modes=(), tau=0.12, band=(400, 5000), noise=1.0, reactions=("splash",)),
    "glass": dict(
        colour=(172, 208, 216),
        modes=(1900, 4100, 6600),
        tau=0.3,
        band=(3000, 12000),
        noise=0.08,
        reactions=("static", "static", "rigid-motion"),
    ),
    "leaf": dict(
        colour=(75, 130, 42), modes=(), tau=0.15, band=(1200, 9000), noise=1.0, reactions=("deformation", "scatter")
    ),
}


def gh_surface(material: str, rng, p: float, r: float) -> s.Scene:
    """A close-up of the struck surface: base colour, a material texture (frequency ~ pitch), scuffs (~ rate)."""
    spec = GH_MATERIALS[material]
    img = np.empty((s.H, s.W, 3), np.float32)
    img[:] = spec["colour"]
    plain = float(img.mean())
    if material == "wood":
        s.modulate(img, s.stripes(7 * p, 90, warp=0.05 * s.value_noise(rng, 3)), 0.25)
        for y in (40, 84):
            s.over(img, s.segment(0, y + rng.uniform(-4, 4), 128, y, 1.5), (90, 58, 32))
    elif material == "metal":  # brushed steel sheet: fine horizontal lines, a soft specular band, rivets
        s.modulate(img, s.stripes(24 * p, 90, warp=0.01 * s.value_noise(rng, 8)), 0.14)
        y0 = rng.uniform(30, 98)
        s.over(img, np.exp(-(((s.YY - y0) / 14) ** 2)), (205, 210, 220), 0.45)
        for x in (10, 118):
            for y in (14, 64, 114):
                s.over(img, s.ellipse(x, y, 3), (90, 92, 100))
    elif material == "water":
        cx, cy = rng.uniform(30, 98), rng.uniform(30, 98)
        d = np.hypot(s.XX - cx, s.YY - cy) / s.W
        s.modulate(img, np.sin(2 * np.pi * 8 * p * d).astype(np.float32), 0.3)
    elif material == "glass":
        s.modulate(img, s.stripes(3 * p, 35, rng.uniform(0, 6.3)), 0.22)
        s.over(img, s.segment(10, 30, 50, -10, 3), (240, 250, 252), 0.6)
    elif material == "leaf":
        cells = s.value_noise(rng, 10 * p)
        s.modulate(img, np.sign(cells) * np.minimum(np.abs(cells) * 4, 1), 0.18)
        s.modulate(img, -np.clip(1 - np.abs(cells) * 12, 0, 1), 0.4)  # veins where leaves meet
    shade = tuple(c * (1.35 if material == "metal" else 0.6) for c in spec["colour"])
    for _ in range(s.count(12, r)):
        s.over(img, s.ellipse(rng.uniform(8, 120), rng.uniform(8, 120), rng.uniform(1.2, 2.6)), shade, 0.8)
    return s.Scene(img, plain)


STICK_DIR = np.array([0.6, -0.8])  # from the tip towards the hand


def gh_stick(frame: np.ndarray, tip: tuple[float, float], lift: float, contact: bool) -> None:
    """Draw the drumstick raised by ``lift`` pixels above ``tip`` (and a flash ring on contact), in place."""
    x, y = np.asarray(tip) + lift * STICK_DIR
    hx, hy = np.asarray((x, y)) + 110 * STICK_DIR
    s.over(frame, s.segment(x, y, hx, hy, 3.2), (205, 178, 128))
    if contact:
        s.over(frame, s.ring(tip[0], tip[1], 6, 1.5), (255, 255, 240), 0.7)


def gh_hit_sound(material: str, rng, sr: int, p: float, scratch: bool = False) -> np.ndarray:
    """One impact (or scratch) on ``material``: modes times ``p``, a noise burst in its band; peak 1."""
    spec = GH_MATERIALS[material]
    dur = min(5 * spec["tau"], 1.5) + 0.05
    m = int((0.3 if scratch else dur) * sr)
    lo, hi = spec["band"]
    if scratch:
        y = s.band_noise(rng, m, sr, lo * p, hi * p) * np.hanning(m) ** 0.5
    else:
        y = np.zeros(m)
        if spec["modes"]:
            y += s.resonance(sr, [f * p * rng.uniform(0.97, 1.03) for f in spec["modes"]], spec["tau"], dur, rng)
        if spec["noise"]:
            tau = min(spec["tau"] * 0.5, 0.06) if spec["modes"] else spec["tau"]
            y += spec["noise"] * s.band_noise(rng, m, sr, lo * p, hi * p) * s.envelope(m, sr, tau, 0.001)
        if material == "water":
            for _ in range(3):
                f0 = 900 * p * rng.uniform(0.7, 1.3)
                s.add_at(y, 2 * s.chirp(sr, f0, 1.6 * f0, 0.05, 0.02), rng.uniform(0.02, 0.3), sr)
        if material == "leaf":
            for _ in range(12):
                c = int(0.004 * sr)
                s.add_at(
                    y, 3 * s.band_noise(rng, c, sr, 2000 * p, 9000) * s.envelope(c, sr, 0.001), rng.uniform(0, 0.4), sr
                )
    return y / (np.max(np.abs(y)) + 1e-12)


# ---- RAVDESS: a singing face ------------------------------------------------------------------------------------
RAVDESS_LOOK = {  # background tint, brow (inner, outer) offsets, mouth curvature, eyes wide, f0 semitones, tempo
    "neutral": dict(tint=(150, 150, 150), brow=(0, 0), curve=0.0, wide=False, shift=0, tempo=3.0, roll=1.3),
    "calm": dict(tint=(140, 190, 175), brow=(-1, -1), curve=2.0, wide=False, shift=-1, tempo=2.4, roll=2.0),
    "happy": dict(tint=(235, 205, 90), brow=(-3, -2), curve=5.0, wide=False, shift=3, tempo=4.0, roll=1.2),
    "sad": dict(tint=(90, 115, 185), brow=(-5, 2), curve=-4.0, wide=False, shift=-3, tempo=2.2, roll=1.6),
    "angry": dict(tint=(200, 70, 60), brow=(5, -3), curve=-2.0, wide=False, shift=1, tempo=3.8, roll=0.7),
    "fearful": dict(tint=(150, 110, 190), brow=(-6, -4), curve=-1.0, wide=True, shift=5, tempo=3.2, roll=1.1),
}
MELODIES = {"01": (0, 2, 4, 5, 4, 2, 0), "02": (0, 4, 7, 5, 4, 2, 0)}  # "Kids/Dogs are ... by the door"
REF_F0 = 165.0  # Hz; the background stripe frequency is proportional to f0 / REF_F0


def ravdess_song(rng, sr: int, duration: float, emotion: str, statement: str, f0: float, tempo: float):
    """A sung phrase: harmonic tone over the statement's melody, emotion-shaped; returns (audio, envelope)."""
    look = RAVDESS_LOOK[emotion]
    notes = [n - 1 if (emotion == "sad" and n in (4, 7)) else n for n in MELODIES[statement]]
    if emotion == "sad":
        notes[-1] -= 2
    lengths = np.full(len(notes), 1 / tempo)
    lengths[-1] *= 1.6
    room = duration - 0.7 if duration > 1.5 else 0.6 * duration
    lengths *= min(1.0, room / lengths.sum())
    n = int(duration * sr)
    start = int((duration - lengths.sum()) / 2 * sr)
    semis = np.full(n, float(notes[0]))
    env = np.zeros(n)
    pos = start
    for note, length in zip(notes, lengths):
        m = int(length * sr)
        semis[pos : pos + m] = note
        t = np.arange(m) / sr
        env[pos : pos + m] = np.minimum(t / 0.04, 1) * np.minimum((length - t) / 0.06, 1).clip(0)
        pos += m
    semis[pos:] = notes[-1]
    k = int(0.03 * sr)
    c = np.cumsum(np.concatenate([np.full(k, semis[0]), semis]))
    semis = (c[k:] - c[:-k]) / k  # portamento: a 30 ms moving average of the note track
    t = np.arange(n) / sr
    vib = (0.5 if emotion == "fearful" else 0.25) * np.sin(2 * np.pi * 5.5 * t)
    freq = f0 * 2 ** ((semis + vib) / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    y = np.zeros(n)
    for h in range(1, 13):
        if h * f0 * 2 > 0.45 * sr:
            break
        formant = 1 + 1.5 * np.exp(-0.5 * ((h * f0 - 800) / 300) ** 2)
        y += np.sin(h * phase) * h ** -look["roll"] * formant
    if emotion == "fearful":
        env = env * (1 - 0.4 * (0.5 + 0.5 * np.sin(2 * np.pi * 7 * t)))
    y = y * env + 0.05 * s.band_noise(rng, n, sr, 2000, 8000) * env  # breath
    return y, env


def ravdess_face(rng, emotion: str, intensity: str, actor: int, pitch_ratio: float, r: float) -> s.Scene:
    """The actor's face on an emotion-tinted background; stripes ~ sung pitch, note dots ~ tempo."""
    look = RAVDESS_LOOK[emotion]
    actor_rng = np.random.default_rng([7, actor])  # the same actor looks the same in every file
    skin = actor_rng.choice([(232, 190, 160), (200, 150, 115), (150, 105, 75), (240, 205, 180)])
    hair = actor_rng.choice([(40, 30, 25), (110, 70, 35), (200, 170, 90), (70, 60, 60)])
    img = np.empty((s.H, s.W, 3), np.float32)
    img[:] = look["tint"]
    if actor % 2:  # male: short hair
        s.over(img, s.ellipse(64, 40, 38, 26), hair)
    else:  # female: long hair
        s.over(img, s.ellipse(64, 62, 44, 56) * (s.YY < 112), hair)
    face = s.ellipse(64, 66, 33, 42)
    s.over(img, face, skin)
    s.over(img, face, look["tint"], 0.18 if intensity == "01" else 0.3)
    plain = float(img.mean())
    bg = 1 - np.clip(face + s.ellipse(64, 55, 44, 56), 0, 1)
    s.modulate(img, s.stripes(5 * pitch_ratio, 30), 0.12, bg)
    for _ in range(s.count(4, r)):
        x = rng.choice([rng.uniform(4, 22), rng.uniform(106, 124)])
        s.over(img, s.ellipse(x, rng.uniform(8, 120), 2.5), tuple(min(255, c + 60) for c in look["tint"]))
    gain = 1.0 if intensity == "01" else 1.6
    for side in (-1, 1):
        ex = 64 + side * 14
        if look["wide"]:
            s.over(img, s.ellipse(ex, 58, 6), (250, 250, 250))
        s.over(img, s.ellipse(ex, 58, 3.2), (30, 25, 25))
        inner, outer = (gain * v for v in look["brow"])
        s.over(img, s.segment(64 + side * 7, 48 + inner, 64 + side * 21, 48 + outer, 2.4), hair * 0.6)
    curve = _mouth_curve(emotion, intensity)  # > 0 smiles: corners up
    s.over(
        img, s.polyline([(64 + x, 88 - 2 * curve * (x / 12) ** 2) for x in np.linspace(-12, 12, 9)], 2.2), (120, 40, 45)
    )
    return s.Scene(img, plain)


def _mouth_curve(emotion: str, intensity: str) -> float:
    return RAVDESS_LOOK[emotion]["curve"] * (1.0 if intensity == "01" else 1.6)


def ravdess_mouth(frame: np.ndarray, emotion: str, intensity: str, opening: float) -> None:
    """The mouth opened by the current singing level ``opening`` in [0, 1] (its closed line is in the face)."""
    curve = _mouth_curve(emotion, intensity)
    if opening > 0.05:
        s.over(frame, s.ellipse(64, 88 + 0.3 * curve, 8 + 2 * opening, 1 + 6 * opening), (70, 20, 25))
