"""The app in a real headless browser (Debian's chromium + chromedriver through Selenium): a WAV in, Generate, an
image of the configured size out; a text file as audio gives a readable message in the page; an edit, then a
second edit of the same image reusing its inversion. Skipped, with the reason, where Gradio, Selenium or the
browser is missing (.ci/run installs them)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import urllib.request

import pytest

# .ci/run sets SONIC_REQUIRE_BROWSER=1: there, a missing piece fails the test instead of skipping it
REQUIRED = os.environ.get("SONIC_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing() -> str | None:
    for module, extra in (("gradio", "app"), ("selenium", "test")):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[{extra}]')"
    if not (CHROMIUM and CHROMEDRIVER):
        return "no browser: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    return None


MISSING = _missing()
if MISSING and REQUIRED:
    raise RuntimeError(f"SONIC_REQUIRE_BROWSER=1 but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
if MISSING is None:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from sonic import config
    from sonic.app.studio import Studio
    from sonic.app.ui import build
    from tests.app import RESOLUTION, write_app_world

# headless, and nothing that reaches for the network (this machine has none)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1400")
WAIT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = write_app_world(tmp_path_factory.mktemp("app"))
    fake = w["text"].with_name("notes.wav")  # text under an audio name: passes the page's file filter
    fake.write_text(w["text"].read_text())
    w["fake_wav"] = fake
    fake_png = w["text"].with_name("notes.png")
    fake_png.write_text(w["text"].read_text())
    w["fake_png"] = fake_png
    return w


@pytest.fixture(scope="module")
def url(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("images")
    studio = Studio(config.load(str(world["config"])), out_dir=out)
    studio.load(world["weights"])
    page = build(studio)
    port = free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        share=False, allowed_paths=[str(out)])
    yield f"http://127.0.0.1:{port}/"
    page.close()


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "gen-button"))


def upload(browser, container: str, path, accepted: bool = True) -> None:
    """Give ``path`` to the file field in ``#container``; ``accepted``: wait until the page took it (the field
    gives way to the file's player or name)."""
    selector = f"#{container} input[type=file]"
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))[0].send_keys(str(path))
    if accepted:
        WebDriverWait(browser, WAIT_S).until(lambda d: not d.find_elements(By.CSS_SELECTOR, selector))


def page_text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def wait_for_text(browser, text: str) -> None:
    try:
        WebDriverWait(browser, WAIT_S).until(lambda d: text in page_text(d))
    except TimeoutException:
        raise AssertionError(f"{text!r} never appeared; the page says:\n{page_text(browser)[-2000:]}") from None


def png_size(src: str) -> tuple[int, int]:
    from PIL import Image

    with urllib.request.urlopen(src) as r:  # the image the page shows, as the server sends it
        assert r.headers.get("content-type") == "image/png"
        return Image.open(io.BytesIO(r.read())).size


def test_generate_from_an_uploaded_wav(browser, url, world):
    open_page(browser, url)
    upload(browser, "gen-audio", world["tone"])
    browser.find_element(By.ID, "gen-button").click()
    images = WebDriverWait(browser, WAIT_S).until(
        lambda d: [i for i in d.find_elements(By.CSS_SELECTOR, "#gen-gallery img")
                   if d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)])
    assert browser.execute_script("return arguments[0].naturalWidth", images[0]) == RESOLUTION
    assert png_size(images[0].get_attribute("src")) == (RESOLUTION, RESOLUTION)
    wait_for_text(browser, "seed 0")
    settings = browser.find_element(By.ID, "gen-settings").text
    assert "tone.wav" in settings and "steps: 3" in settings
    assert browser.find_elements(By.CSS_SELECTOR, "#gen-files a[download], #gen-files a")  # the download link


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
    browser.find_element(By.ID, "tab-edit-button").click()
    upload(browser, "edit-image", world["fake_png"])
    wait_for_text(browser, "Image: notes.png cannot be read as an image")
    browser.refresh()
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_elements(By.ID, "tab-edit-button"))
    browser.find_element(By.ID, "tab-edit-button").click()
    upload(browser, "edit-image", world["image"])
    upload(browser, "edit-audio", world["tone"])
    for inversion in ("computed", "reused"):
        browser.find_element(By.ID, "edit-button").click()
        wait_for_text(browser, f"inversion: {inversion}")
    image = browser.find_element(By.CSS_SELECTOR, "#edit-out img")
    assert png_size(image.get_attribute("src")) == (RESOLUTION, RESOLUTION)
