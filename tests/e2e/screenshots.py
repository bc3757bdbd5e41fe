"""Screenshots of the main pages for the README, taken from the real app at 1400 px wide.

Usage: ``python tests/e2e/screenshots.py [OUT_DIR]`` (default assets/screenshots). It starts the app on
an empty data folder, runs the quick start from Home plus two small runs to compare, and saves
home.png, data.png, build.png, train.png, runs.png and presentation.png (each kept under 500 KB).
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]
from _server import (CHROMIUM, CHROMIUM_ARGS, ROOT, WIDTH, AppServer, exceptions,  # noqa: E402
                     full_page_screenshot, settle)

MAX_BYTES = 500_000


def shrink(path: Path) -> None:
    """Re-encode as a 256-colour PNG when a screenshot is over the size limit (UI colours are few)."""
    from PIL import Image

    if path.stat().st_size <= MAX_BYTES:
        return
    img = Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    path.write_bytes(buf.getvalue())


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DLE_DATA_DIR"] = tmp
        import dlcore

        extra = [dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("cnn-tiny"),
                                  dlcore.TrainSpec(epochs=3), name="Small CNN on MNIST"),
                 dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("vit-tiny"),
                                  dlcore.TrainSpec(epochs=2), name="Tiny ViT on MNIST")]
        for rid in extra:
            dlcore.wait(rid, timeout=900)
        server = AppServer(Path(tmp))
        try:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(server.url + "/")
                settle(page)
                page.get_by_role("button", name="Train the tutorial CNN on MNIST").click()
                page.wait_for_url("**/train?run=*")
                page.get_by_text("test accuracy").wait_for(timeout=900_000)
                settle(page)
                full_page_screenshot(page, out / "train.png")
                for name in ("home", "data", "build", "runs"):
                    page.goto(server.url + ("/" if name == "home" else f"/{name}"))
                    settle(page)
                    if name == "runs":
                        page.get_by_text("Confusion matrix (1,000 test examples)").wait_for()
                    full_page_screenshot(page, out / f"{name}.png")
                    assert not exceptions(page), name
                page.goto(server.url + "/train")
                settle(page)
                page.get_by_text("Presentation mode").click()
                settle(page)
                full_page_screenshot(page, out / "presentation.png")
                browser.close()
        finally:
            server.stop()
    for png in out.glob("*.png"):
        shrink(png)
        print(f"{png}: {png.stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
