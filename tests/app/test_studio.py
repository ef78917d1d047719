"""The app's work without its page (sonic.app.studio): generation and editing match the CLI's pipeline, the
inversion is reused across edits of one image, and every bad input is an AppError naming the input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sonic import config
from sonic.app.studio import AppError, Studio, parse_layer_betas, parse_seeds
from tests.app import RESOLUTION, write_app_world
from tests.tiny import AUDIO_DIM


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_app_world(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def studio(world, tmp_path_factory):
    s = Studio(config.load(str(world["config"])), out_dir=tmp_path_factory.mktemp("out"))
    s.load(world["weights"])
    return s


def test_seeds_and_layer_betas_parse_or_say_what_is_wrong():
    assert parse_seeds("0, 2, 5-7") == [0, 2, 5, 6, 7]
    assert parse_seeds("3.0") == [3] and parse_seeds("") == [0]
    for bad, words in [("a", "'a' is not"), ("4-2", "backwards"), ("0-40", "at most 16")]:
        with pytest.raises(AppError, match=words):
            parse_seeds(bad)
    layers = ["mid", "up3", "up4"]
    assert parse_layer_betas("", 0.7, layers) == 0.7
    assert parse_layer_betas("up3=0.5, mid=1.2", 0.7, layers) == {"mid": 1.2, "up3": 0.5, "up4": 0.7}
    with pytest.raises(AppError, match="no adapter at 'down1'.*mid, up3, up4"):
        parse_layer_betas("down1=1", 1.0, layers)
    with pytest.raises(AppError, match="not LAYER=VALUE"):
        parse_layer_betas("up3", 1.0, layers)


def test_generate_gives_the_pipelines_images_with_their_settings(studio, world):
    steps = []
    results = studio.generate(str(world["tone"]), prompt="a cube", seeds="0, 1", steps=3, guidance=5.0, beta=0.8,
                              layer_betas="up3=0.5", progress=lambda f, text: steps.append((f, text)))
    assert [r.settings["seed"] for r in results] == [0, 1]
    assert steps[-1][0] == pytest.approx(1.0) and len(steps) == 3  # one batch of 2 seeds x 3 steps
    for r in results:
        image = Image.open(r.path)
        assert image.size == (RESOLUTION, RESOLUTION)
        saved = json.loads(image.text["sonic"])
        assert saved["beta"]["up3"] == 0.5 and saved["beta"]["mid"] == 0.8 and saved["prompt"] == "a cube"
        assert "seed: " in r.caption and "tone.wav" in r.caption
    # the same images as the pipeline called directly (what `sonic generate` runs)
    pipe = studio.pipe
    from sonic.audio import load_audio

    embeds = pipe.embed_audio([load_audio(world["tone"], pipe.audio_encoder.sample_rate)])
    direct = pipe(embeds, prompt="a cube", seeds=[0, 1], num_inference_steps=3, guidance_scale=5.0,
                  beta={**{n: 0.8 for n in pipe.adapters.names}, "up3": 0.5}, height=RESOLUTION, width=RESOLUTION,
                  progress=False)
    from sonic.images import to_pil

    for r, image in zip(results, to_pil(direct), strict=True):
        assert np.array_equal(np.asarray(Image.open(r.path).convert("RGB")), np.asarray(image))


def test_second_audio_at_alpha_zero_is_the_first(studio, world):
    a = studio.generate(str(world["tone"]), seeds="0", steps=2)[0]
    b = studio.generate(str(world["tone"]), seeds="0", steps=2, audio_b=str(world["noise"]), alpha=0.0)[0]
    c = studio.generate(str(world["tone"]), seeds="0", steps=2, audio_b=str(world["noise"]), alpha=1.0)[0]
    d = studio.generate(str(world["noise"]), seeds="0", steps=2)[0]
    pixels = [np.asarray(Image.open(r.path)) for r in (a, b, c, d)]
    assert np.array_equal(pixels[0], pixels[1]) and np.array_equal(pixels[2], pixels[3])
    assert "second audio: noise.wav" in b.caption and "alpha: 0" in b.caption


def test_edit_reuses_the_inversion_of_the_same_image(studio, world):
    first = studio.edit(str(world["image"]), str(world["tone"]), f_t=0.8, attn_t=0.5, steps=3)
    second = studio.edit(str(world["image"]), str(world["noise"]), f_t=0.6, attn_t=0.4, steps=3)
    assert first.settings["inversion"] == "computed" and second.settings["inversion"] == "reused"
    again = studio.edit(str(world["image"]), str(world["tone"]), f_t=0.8, attn_t=0.5, steps=3)
    assert np.array_equal(np.asarray(Image.open(first.path)), np.asarray(Image.open(again.path)))
    assert Image.open(first.path).size == (RESOLUTION, RESOLUTION)
    assert "f_t: 0.6" in second.caption and "attn_t: 0.4" in second.caption


@pytest.mark.parametrize("field, words", [
    ("text", r"Audio: notes.txt is not a readable audio file"),
    ("silence", r"Audio: silence.wav is silent \(-inf dBFS"),
    (None, r"Audio: upload or record"),
])
def test_bad_audio_is_named(studio, world, field, words):
    with pytest.raises(AppError, match=words):
        studio.generate(str(world[field]) if field else None, seeds="0", steps=1)


def test_unreadable_image_and_bad_edit_settings_are_named(studio, world):
    with pytest.raises(AppError, match=r"Image: notes.txt cannot be read as an image"):
        studio.edit(str(world["text"]), str(world["tone"]), steps=1)
    with pytest.raises(AppError, match=r"f_t / attn_t: .*f_t must lie in \[0, 1\]"):
        studio.edit(str(world["image"]), str(world["tone"]), f_t=1.5, steps=1)


def test_weights_that_do_not_match_the_config_are_refused_and_the_old_ones_kept(world, tmp_path):
    s = Studio(config.load(str(world["config"])), out_dir=tmp_path)
    with pytest.raises(AppError, match="No weights|no weights are loaded"):
        s.generate(str(world["tone"]))
    with pytest.raises(AppError, match=rf"wrong does not match config .*reads {AUDIO_DIM + 4}-d audio embeddings, "
                                       rf"the audio encoder gives {AUDIO_DIM}-d"):
        s.load(world["wrong"])
    with pytest.raises(AppError, match=r"Weights folder .*sd: not SonicDiffusion weights"):
        s.load(world["config"].parent / "sd")
    s.load(world["weights"])
    with pytest.raises(AppError, match=r"broken does not match config .*missing \['mid.attn"):
        s.load(world["broken"])
    assert s.weights == str(world["weights"]) and len(s.generate(str(world["tone"]), steps=1)) == 1


def test_sonic_app_builds_the_page_and_serves_it_even_when_the_weights_are_refused(world, tmp_path, monkeypatch,
                                                                                    caplog):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[app]')")
    import sonic.app.ui as ui
    from sonic.cli import main

    served = []
    monkeypatch.setattr(ui, "launch", lambda page, allowed, host, port: served.append((page, allowed, host, port)))
    assert main(["app", "--config", str(world["config"]), "--weights", str(world["weights"]), "--port", "7999",
                 "--out", str(tmp_path / "a")]) == 0
    page, allowed, host, port = served[-1]
    assert (allowed, host, port) == (str(tmp_path / "a"), "127.0.0.1", 7999)
    assert "Edit" in str(page.config) and "Generate" in str(page.config)
    with caplog.at_level("ERROR"):
        assert main(["app", "--config", str(world["config"]), "--weights", str(world["wrong"]),
                     "--out", str(tmp_path / "b")]) == 0
    assert "does not match config" in caplog.text and len(served) == 2


def test_layer_betas_accept_spaces_around_equals_and_space_separated_pairs():
    assert parse_layer_betas("up3 = 0.5 mid=1.2", 1.0, ["mid", "up3"]) == {"mid": 1.2, "up3": 0.5}
    with pytest.raises(AppError, match=r"'x' \(for up3\) is not a number"):
        parse_layer_betas("up3=x", 1.0, ["up3"])
