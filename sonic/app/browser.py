"""Driving the app in headless Chromium (Selenium with Debian's ``chromium`` and ``chromedriver``; no browser
download): serve a page on a free local port, open it, upload files, wait for text. Used by the browser test
(``tests/app/test_browser.py``) and the docs' screenshots (``docs/app_screenshots.py``)."""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

WAIT_S = 120
# headless, and nothing that reaches for the network (the build machines have none)
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> tuple[str | None, str | None]:
    """(browser, driver) paths on ``PATH``, or None where missing."""
    return shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(page, allowed: Path) -> Iterator[str]:
    """Launch the Gradio ``page`` on a free local port (its files under ``allowed``); yields its URL."""
    from sonic.app.ui import launch

    port = free_port()
    launch(page, str(allowed), port=port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        page.close()


@contextlib.contextmanager
def headless_chromium(width: int = 1280, height: int = 1400):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium()
    if not (browser and driver):
        raise RuntimeError("no browser: install Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def _wait(browser, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, WAIT_S).until(condition)
    except TimeoutException:
        raise AssertionError(f"{what} within {WAIT_S} s; the page says:\n{page_text(browser)[-2000:]}") from None


def page_text(browser) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.TAG_NAME, "body").text


def open_page(browser, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url)
    _wait(browser, lambda d: d.find_elements(By.ID, "gen-button"), "the page did not load")


def open_tab(browser, elem_id: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(browser, lambda d: d.find_elements(By.ID, f"{elem_id}-button"), f"no tab {elem_id}")[0].click()


def upload(browser, container: str, path, accepted: bool = True) -> None:
    """Give ``path`` to the file field in ``#container``; ``accepted``: wait until the page took it (the field
    gives way to the file's player or name)."""
    from selenium.webdriver.common.by import By

    selector = f"#{container} input[type=file]"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, selector), f"no file field in #{container}")[0] \
        .send_keys(str(path))
    if accepted:
        _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, selector), f"#{container} did not take {path}")


def wait_for_text(browser, text: str) -> None:
    _wait(browser, lambda d: text in page_text(d), f"{text!r} did not appear")


def loaded_images(browser, selector: str) -> list:
    """The ``<img>`` under ``selector`` once at least one has loaded."""
    from selenium.webdriver.common.by import By

    def ready(d):
        return [i for i in d.find_elements(By.CSS_SELECTOR, f"{selector} img")
                if d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)]

    return _wait(browser, ready, f"no image in {selector}")
