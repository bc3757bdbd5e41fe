"""Screenshot of the Language page with a small trained character LM (lm-tiny on pydoc-lm).

Usage: ``python tests/e2e/screenshot_language.py [OUT_DIR]`` (default assets/screenshots) → language.png.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]
from _server import CHROMIUM, CHROMIUM_ARGS, ROOT, WIDTH, AppServer, exceptions, full_page_screenshot, settle  # noqa: E402
from screenshots import shrink  # noqa: E402


def main(out: Path, steps: int = 300) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DLE_DATA_DIR"] = tmp
        import dlcore
        from dlcore.train.worker import run_job
        store = dlcore.RunStore(Path(tmp))
        rid = store.create(dlcore.DataSpec(name="pydoc-lm"), dlcore.get_preset("lm-tiny"),
                           dlcore.TrainSpec(epochs=1, seed=0, max_steps=steps), name="Tiny char LM on Python docs")
        assert run_job(rid, store) == "completed"
        server = AppServer(Path(tmp))
        try:
            server.wait_ready()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 900})
                page.set_default_timeout(120_000)
                page.goto(server.url + f"/language?run={rid}")
                settle(page)
                page.get_by_role("button", name="Generate 40").click()
                page.get_by_text("Generated").first.wait_for()
                page.mouse.move(0, 0)  # no tooltip over the sliders
                settle(page)
                full_page_screenshot(page, out / "language.png")
                assert not exceptions(page)
                browser.close()
        finally:
            server.stop()
    shrink(out / "language.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "assets" / "screenshots")
