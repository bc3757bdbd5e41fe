"""Screenshots of the look inside while it trains, from the real app in Chromium at 1400 px wide.

Usage: ``python tests/snapshots/screenshots.py [OUT_DIR]`` (default assets/screenshots). On an empty data
folder it trains a seed CNN on mnist5k (6 epochs) and a tiny Transformer on reverse (8 epochs) through the
worker, then saves filters-epochs.png (the epoch slider scrubbed to epoch 1, and the animation),
attention-epochs.png ("watch the heads specialise") and filters-training.png (a run seen while it trains);
it also checks that the open page notices when that run finishes. About three minutes on two cores.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT)]
from _server import CHROMIUM, CHROMIUM_ARGS, WIDTH, AppServer, exceptions, full_page_screenshot, settle  # noqa: E402
from screenshots import shrink  # noqa: E402


def crop(path: Path, top: int, bottom: int) -> None:
    from PIL import Image

    img = Image.open(path)
    img.crop((0, top, img.width, min(bottom, img.height))).save(path)
    shrink(path)


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DLE_DATA_DIR"] = tmp
        import torch

        torch.set_num_threads(1)
        import dlcore
        from dlcore.train.worker import run_job

        store = dlcore.RunStore()
        cnn = store.create(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("seed-cnn"),
                           dlcore.TrainSpec(epochs=6, seed=1), name="Seed CNN on MNIST", shared=True)
        enc = store.create(dlcore.DataSpec(name="reverse"), dlcore.get_preset("transformer-tiny"),
                           dlcore.TrainSpec(epochs=8, seed=1), name="Tiny Transformer on reverse", shared=True)
        for rid in (cnn, enc):
            assert run_job(rid, store) == "completed", store.get(rid).error
        server = AppServer(Path(tmp))
        try:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(server.url + f"/filters?run={cnn}")
                page.get_by_text("Watch the filters form").wait_for()
                settle(page)
                page.get_by_role("slider").first.focus()
                page.keyboard.press("Home")
                page.keyboard.press("ArrowRight")
                page.get_by_text("Filters after epoch 1").wait_for()
                settle(page)
                page.wait_for_timeout(1000)
                assert not exceptions(page), exceptions(page)
                crop(full_page_screenshot(page, out / "filters-epochs.png"), 0, 1950)

                page.goto(server.url + f"/attention?run={enc}")
                page.get_by_text("Watch the heads specialise").wait_for()
                settle(page)
                page.wait_for_timeout(1000)
                assert not exceptions(page), exceptions(page)
                top = int(page.get_by_text("Watch the heads specialise").bounding_box()["y"])  # main scrolled to 0
                crop(full_page_screenshot(page, out / "attention-epochs.png"), top - 100, top + 850)

                page.set_viewport_size({"width": WIDTH, "height": 900})
                live = dlcore.start_run(dlcore.DataSpec(name="mnist5k"), dlcore.get_preset("seed-cnn"),
                                        dlcore.TrainSpec(epochs=10, seed=2), name="Seed CNN, training")
                deadline = time.time() + 240
                while time.time() < deadline and len(dlcore.list_snapshots(live)) < 3:
                    time.sleep(1)
                page.goto(server.url + f"/filters?run={live}")
                page.get_by_text("This run is training").wait_for()
                settle(page)
                assert not exceptions(page), exceptions(page)
                crop(full_page_screenshot(page, out / "filters-training.png"), 0, 1150)
                dlcore.wait(live, timeout=300)
                page.get_by_text("epoch 10 (end)").first.wait_for(timeout=30_000)  # the open page noticed
                assert page.get_by_text("This run is training").count() == 0
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
