"""Screenshots of every page of the app at 1400 and 1024 px wide, for the README's page-by-page guide.

Serves the app on 127.0.0.1 with the shipped resnet18 (or a tiny random model) and opens each page in headless
Chromium. Diagnose gets a synthetic 512x512 film (never a data-set image); Explore and the Models page's data
folder get DATA_DIR when given. Writes docs/screenshots/<page>-<width>.png.

    python bench/screenshots.py [--data DATA_DIR] [--checkpoint weights/resnet18.pt]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from app_latency import xray_like_jpeg_512  # bench/ is on sys.path
from load_test import serving_app

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "screenshots"
PAGES = {"diagnose": "", "validate": "validate", "denoise": "denoise", "explore": "explore", "train": "train",
         "models": "models"}


def settle(page, text: str, timeout_s: float = 120) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout_s * 1000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=timeout_s * 1000)
    time.sleep(1.5)


def main() -> int:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data folder for the Explore page")
    ap.add_argument("--checkpoint", default=str(REPO / "weights" / "resnet18.pt"))
    args = ap.parse_args()
    if args.data:
        os.environ["COVID_XRAY_DATA"] = str(Path(args.data).resolve())
    OUT.mkdir(parents=True, exist_ok=True)
    film = REPO / "test-artifacts" / "synthetic-film.jpg"
    film.parent.mkdir(exist_ok=True)
    film.write_bytes(xray_like_jpeg_512())
    checkpoint = args.checkpoint if Path(args.checkpoint).is_file() else None
    with serving_app(checkpoint) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--disable-sync", "--no-first-run"])
        for width in (1400, 1024):
            page = browser.new_page(viewport={"width": width, "height": 1100})
            for name, path in PAGES.items():
                page.goto(url + path, wait_until="domcontentloaded")
                settle(page, "Research use only")
                if name == "diagnose":
                    page.locator("input[type=file]").first.set_input_files(str(film))
                    settle(page, "validated", 180)
                if name == "explore" and args.data:
                    settle(page, "Images", 600)
                page.screenshot(path=str(OUT / f"{name}-{width}.png"))
                print(f"wrote {OUT / f'{name}-{width}.png'}")
            page.close()
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
