"""The docs' screenshots of the app (docs/app_generate.png, docs/app_edit.png): serves ``sonic app`` on a config
and weights, drives it in headless Chromium (Debian's chromium + chromedriver) through one generation and one edit,
and captures each tab.

    python docs/app_screenshots.py --config config.yaml --weights results/train/landscape/full/weights \\
        --audio <clip.wav> --image <frame.png> [--seeds "0, 1, 2, 3"] [--out docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--audio", required=True, help="the clip for both tabs")
    ap.add_argument("--image", required=True, help="the image to edit")
    ap.add_argument("--prompt", default="")
    ap.add_argument("--seeds", default="0, 1, 2, 3")
    ap.add_argument("--out", default=str(Path(__file__).parent))
    args = ap.parse_args(argv)

    from selenium.webdriver.common.by import By

    from sonic import config
    from sonic.app.browser import headless_chromium, loaded_images, open_page, open_tab, serve, upload, wait_for_text
    from sonic.app.studio import Studio
    from sonic.app.ui import build

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = Path(tempfile.mkdtemp(prefix="sonic-app-shots-"))
    studio = Studio(config.load(args.config), out_dir=images)
    studio.load(args.weights)
    with serve(build(studio), images) as url, headless_chromium(1280, 1320) as browser:
        open_page(browser, url)
        upload(browser, "gen-audio", Path(args.audio).resolve())
        seeds = browser.find_element(By.CSS_SELECTOR, "#gen-seeds textarea, #gen-seeds input")
        seeds.clear()
        seeds.send_keys(args.seeds)
        if args.prompt:
            browser.find_element(By.CSS_SELECTOR, "#gen-prompt textarea, #gen-prompt input").send_keys(args.prompt)
        browser.find_element(By.ID, "gen-button").click()
        wait_for_text(browser, "seed: 0")
        loaded_images(browser, "#gen-gallery")
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(out / "app_generate.png"))
        open_tab(browser, "tab-edit")
        upload(browser, "edit-image", Path(args.image).resolve())
        upload(browser, "edit-audio", Path(args.audio).resolve())
        loaded_images(browser, "#edit-preview")
        browser.find_element(By.ID, "edit-button").click()
        wait_for_text(browser, "inversion: computed")
        loaded_images(browser, "#edit-out")
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(out / "app_edit.png"))
    for name in ("app_generate.png", "app_edit.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
