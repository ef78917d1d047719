"""The app in a real headless browser (Debian's chromium + chromedriver through Selenium): a WAV in, Generate, an
image of the configured size out; a text file as audio gives a readable message in the page; an edit, then a
second edit of the same image reusing its inversion. Skipped, with the reason, where Gradio, Selenium or the
browser is missing (.ci/run installs them)."""

from __future__ import annotations

import io
import os
import urllib.request

import pytest

# .ci/run sets SONIC_REQUIRE_BROWSER=1: there, a missing piece fails the test instead of skipping it
REQUIRED = os.environ.get("SONIC_REQUIRE_BROWSER") == "1"


def _missing() -> str | None:
    for module, extra in (("gradio", "app"), ("selenium", "test")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[{extra}]')"
    from sonic.app.browser import chromium

    if None in chromium():
        return "no browser: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    return None


MISSING = _missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"SONIC_REQUIRE_BROWSER=1 but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
if MISSING is None:
    from selenium.webdriver.common.by import By

    from sonic import config
    from sonic.app.browser import headless_chromium, loaded_images, open_page, open_tab, page_text, serve, upload, \
        wait_for_text
    from sonic.app.studio import Studio
    from sonic.app.ui import build
    from tests.app import RESOLUTION, write_app_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = write_app_world(tmp_path_factory.mktemp("app"))
    for suffix in ("wav", "png"):  # text under an audio / image name: passes the page's file-type filter
        fake = w["text"].with_name(f"notes.{suffix}")
        fake.write_text(w["text"].read_text())
        w[f"fake_{suffix}"] = fake
    return w


@pytest.fixture(scope="module")
def url(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("images")
    studio = Studio(config.load(str(world["config"])), out_dir=out)
    studio.load(world["weights"])
    with serve(build(studio), out) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as session:
        yield session


def png_size(src: str) -> tuple[int, int]:
    from PIL import Image

    with urllib.request.urlopen(src) as r:  # the image the page shows, as the server sends it
        assert r.headers.get("content-type") == "image/png"
        return Image.open(io.BytesIO(r.read())).size


def test_generate_from_an_uploaded_wav(browser, url, world):
    open_page(browser, url)
    upload(browser, "gen-audio", world["tone"])
    browser.find_element(By.ID, "gen-button").click()
    images = loaded_images(browser, "#gen-gallery")
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) == RESOLUTION
    assert png_size(images[0].get_attribute("src")) == (RESOLUTION, RESOLUTION)
    wait_for_text(browser, "seed: 0")
    settings = browser.find_element(By.ID, "gen-settings").text
    assert "tone.wav" in settings and "steps: 3" in settings
    assert browser.find_elements(By.CSS_SELECTOR, "#gen-files a")  # the download link


def test_a_text_file_as_audio_gets_a_readable_message(browser, url, world):
    open_page(browser, url)
    upload(browser, "gen-audio", world["text"], accepted=False)  # .txt: the page's own file-type check refuses it
    wait_for_text(browser, "Invalid file type: notes.txt")
    upload(browser, "gen-audio", world["fake_wav"])  # text named .wav: reaches the app, which names the problem
    browser.find_element(By.ID, "gen-button").click()
    wait_for_text(browser, "Audio: notes.wav is not a readable audio file")
    assert "Traceback" not in page_text(browser)


def test_weights_that_do_not_match_the_config_get_a_readable_message(browser, url, world):
    open_page(browser, url)
    field = browser.find_element(By.CSS_SELECTOR, "#weights textarea, #weights input")
    field.clear()
    field.send_keys(str(world["wrong"]))
    browser.find_element(By.ID, "load").click()
    wait_for_text(browser, "wrong does not match config")
    assert "the audio encoder gives" in page_text(browser) and "Traceback" not in page_text(browser)


def test_edit_then_edit_again_reusing_the_inversion(browser, url, world):
    open_page(browser, url)
    open_tab(browser, "tab-edit")
    upload(browser, "edit-image", world["fake_png"])
    wait_for_text(browser, "Image: notes.png cannot be read as an image")
    open_page(browser, url)
    open_tab(browser, "tab-edit")
    upload(browser, "edit-image", world["image"])
    upload(browser, "edit-audio", world["tone"])
    for inversion in ("computed", "reused"):
        browser.find_element(By.ID, "edit-button").click()
        wait_for_text(browser, f"inversion: {inversion}")
    image = loaded_images(browser, "#edit-out")[0]
    assert png_size(image.get_attribute("src")) == (RESOLUTION, RESOLUTION)
