"""Screenshots of the Advanced pages (Compress, Overfitting & transfer) with real runs, for the README.

Usage: ``python tests/e2e/screenshots_advanced.py [OUT_DIR]`` (default assets/screenshots): trains a small CNN
on 160 mnist5k images long enough to overfit, prunes and quantizes it, starts two remedy variants, then
saves compress.png and overfitting.png from the real app in Chromium.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]
from _server import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDTH, AppServer, exceptions, full_page_screenshot, settle  # noqa: E402
from screenshots import shrink  # noqa: E402


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DLE_DATA_DIR"] = tmp
        import dlcore

        name = "Small CNN, 160 images"  # few images, a constant rate, many epochs: it overfits
        data, model = dlcore.DataSpec(name="mnist5k", max_train=160), dlcore.get_preset("cnn-tiny")
        train = dlcore.TrainSpec(epochs=30, seed=0, schedule="constant", lr=3e-3)
        rid = dlcore.start_run(data, model, train, name=name)
        run = dlcore.wait(rid, timeout=900)
        assert run.status == "completed", run.error
        for remedy in ("dropout", "more-data"):
            d, m, t = dlcore.remedy_specs(remedy, run.data, run.model, run.train)
            dlcore.wait(dlcore.start_run(d, m, t, name=f"{name} + {remedy}"), timeout=900)
        for method, opts in (("prune", {"sparsity": 0.5, "finetune_epochs": 1}),
                             ("prune", {"sparsity": 0.9, "finetune_epochs": 1}), ("quantize", {})):
            print(dlcore.compress_run(rid, method, **opts))
        server = AppServer(Path(tmp))
        try:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_default_timeout(120_000)
                for slug in ("compress", "overfitting"):
                    page.goto(f"{server.url}/{slug}?run={rid}")
                    settle(page)
                    page.locator(".js-plotly-plot").first.wait_for()
                    settle(page)
                    full_page_screenshot(page, out / f"{slug}.png")
                    assert not exceptions(page), slug
                browser.close()
        finally:
            server.stop()
    for slug in ("compress", "overfitting"):
        shrink(out / f"{slug}.png")
        print(f"{out / slug}.png: {(out / f'{slug}.png').stat().st_size / 1000:.0f} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
