"""Dev tool: screenshots of the FaceChain views in a real browser (headless Chromium), light and dark, 1400 and 900 px.

    PYTHONPATH=tests/fakehost:tests:. .venv/bin/python tools/ui_preview.py --demo &      # the page, on port 7899
    python tools/ui_screenshots.py [--url http://127.0.0.1:7899/] [--out docs/screenshots] [--only NAME ...]

Needs `selenium` (any Python; `pip install selenium`) and Debian's `chromium` + `chromium-driver`
(/usr/bin/chromium, /usr/bin/chromedriver). Each shot drives the page like a person would: opens the view, picks
the demo identity, presses Train/Generate, waits for the host-style progress bar, presses Interrupt. PNGs are reduced
to a 256-colour palette (Pillow) so they stay small enough to commit. Prints the page height of every shot (the
Generate view's height at 900 px is one of the things to watch).
"""

from __future__ import annotations

import argparse
import base64
import io
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def driver(width: int) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*CHROME_FLAGS, f"--window-size={width},1000", f"--user-data-dir={tempfile.mkdtemp(prefix='chromium_')}"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def by_css(page: Any, css: str) -> list:
    from selenium.webdriver.common.by import By

    return page.find_elements(By.CSS_SELECTOR, css)


def wait_for(check: Callable[[], Any], timeout: float = 60.0, step: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(step)
    raise TimeoutError("the page did not get there in time")


def open_tab(page: Any, text: str) -> None:
    button = wait_for(lambda: next((b for b in by_css(page, "button") if b.text.strip() == text and b.is_displayed()), None))
    button.click()
    time.sleep(1.0)


def pick(page: Any, elem_id: str, option: str, css: str | None = None) -> None:
    """Choose `option` in the dropdown with this element id (or found by `css`)."""
    by_css(page, css or f"#{elem_id} input")[0].click()
    item = wait_for(lambda: next((li for li in by_css(page, "ul.options li") if li.text.strip() == option), None), 10)
    item.click()
    time.sleep(0.8)


def bar_text(page: Any) -> str:
    bars = by_css(page, ".progressDiv .progress")
    return bars[0].text if bars else ""


def capture(page: Any, element: Any = None) -> bytes:
    """The whole page (beyond the window), or one element (also where it is taller than the window)."""
    if element is not None:
        box = page.execute_script("var r = arguments[0].getBoundingClientRect(); "
                                  "return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];", element)
        clip = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
    else:
        metrics = page.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1}
    shot = page.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
    return base64.b64decode(shot["data"])


def identities(page: Any) -> list[tuple[str, bytes]]:
    open_tab(page, "FaceChain")
    by_css(page, "#facechain_models .label-wrap")[0].click()
    pick(page, "facechain_identity_choice", "obama")
    time.sleep(1.5)
    return [("identities", capture(page))]


def train(page: Any) -> list[tuple[str, bytes]]:
    open_tab(page, "FaceChain")
    open_tab(page, "Train")
    pick(page, "facechain_train_identity", "obama")
    steps = by_css(page, "#facechain_train_steps input")[0]
    steps.clear()
    steps.send_keys("300")
    by_css(page, "#facechain_train_run")[0].click()
    wait_for(lambda: "Training step" in bar_text(page) and "%" in bar_text(page), 120)
    shots = [("train_progress", capture(page))]
    by_css(page, "#facechain_train_interrupt")[0].click()
    wait_for(lambda: "Cancelled" in by_css(page, "#facechain_train_status")[0].text, 120)
    return shots + [("train_cancelled", capture(page))]


def generate(page: Any) -> list[tuple[str, bytes]]:
    open_tab(page, "FaceChain")
    open_tab(page, "Generate")
    pick(page, "facechain_gen_identity", "obama")
    by_css(page, "#facechain_gen_run")[0].click()
    wait_for(lambda: "%" in bar_text(page), 60)
    shots = [("generate_progress", capture(page))]
    wait_for(lambda: by_css(page, "#facechain_gen_gallery img"), 180)
    time.sleep(1.5)
    return shots + [("generate", capture(page))]


def accordion(page: Any) -> list[tuple[str, bytes]]:
    open_tab(page, "txt2img")
    by_css(page, ".input-accordion .label-wrap")[0].click()
    time.sleep(1.0)
    pick(page, "", "obama", css=".input-accordion [id$='facechain_identity'] input")
    return [("accordion", capture(page, by_css(page, ".input-accordion")[0]))]


def templates(page: Any) -> list[tuple[str, bytes]]:
    template = Path(__file__).resolve().parents[2] / "shared" / "data" / "edge" / "group_two_people.jpg"
    open_tab(page, "FaceChain")
    open_tab(page, "Templates")
    by_css(page, "#facechain_tpl_image input[type='file']")[0].send_keys(str(template))
    wait_for(lambda: "faces, numbered" in by_css(page, "#facechain_tpl_found")[0].text, 120)
    pick(page, "", "obama", css="#facechain_tpl_face_0 input")
    by_css(page, "#facechain_tpl_run")[0].click()
    wait_for(lambda: "%" in bar_text(page) or by_css(page, "#facechain_tpl_gallery img"), 120)
    shots = [("templates_progress", capture(page))]
    wait_for(lambda: by_css(page, "#facechain_tpl_gallery img"), 300)
    time.sleep(1.5)
    return shots + [("templates", capture(page))]


SHOTS = {"identities": identities, "train": train, "generate": generate, "accordion": accordion, "templates": templates}


def small_png(data: bytes) -> bytes:
    """A 256-colour palette PNG of the shot (UI pixels: a few flat colours, so nothing visible is lost)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7899/")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--only", nargs="*", choices=sorted(SHOTS), default=sorted(SHOTS))
    parser.add_argument("--themes", nargs="*", default=["light", "dark"])
    parser.add_argument("--widths", nargs="*", type=int, default=[1400, 900])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for theme in args.themes:
        for width in args.widths:
            for name in args.only:
                page = driver(width)
                try:
                    page.get(args.url + ("?__theme=dark" if theme == "dark" else ""))
                    time.sleep(3)  # the page's own scripts finish setting up (the host's run on load too)
                    for shot, data in SHOTS[name](page):
                        path = args.out / f"{shot}_{theme}_{width}.png"
                        path.write_bytes(small_png(data))
                        height = page.execute_script("return document.body.scrollHeight")
                        print(f"{path}: {path.stat().st_size // 1024} KiB, page height {height} px", flush=True)
                finally:
                    page.quit()


if __name__ == "__main__":
    main()
