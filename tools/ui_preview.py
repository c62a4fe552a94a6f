"""Dev tool: show the FaceChain tab and the txt2img accordion in a browser, without a real webui.

    PYTHONPATH=tests/fakehost:. .venv/bin/python tools/ui_preview.py [--port 7899] [--data-dir DIR]
    PYTHONPATH=tests/fakehost:tests:. .venv/bin/python tools/ui_preview.py --demo

Builds the page the way AUTOMATIC1111 does, on the stand-in host of tests/fakehost: register() wires the
extension, the host's `ui_tabs_callback()` returns the FaceChain Blocks, rendered in a tab with elem_id
`tab_facechain` (so style.css's scoped selectors apply); the Script's accordion goes in a second tab. The host's
javascript/*.js injection is reproduced with an indirect eval on page load, and the root style.css is passed as
`css=`. The host's own page helpers our JS calls are replaced by small stand-ins written here after the host's
behaviour (AUTOMATIC1111 1.10): `randomId()` returns "task(...)", `requestProgress` polls `/internal/progress` (served
from the stand-in host's `modules.progress.progressapi`) and draws the bar before the given container, the
InputAccordion header checkbox (javascript/inputAccordion.js) mirrors the hidden checkbox; a few host CSS rules
(progress bar, generate box, tool buttons) are restated so the page looks as it does inside the webui.

`--demo` prepares an identity from ../shared/data and installs a slow stand-in sampler (real photos, one sampler
step every 0.15 s, honouring Interrupt/Skip), so Generate shows the progress bar and results; with tests/ on
PYTHONPATH it also loads the tests' tiny ldm checkpoint, so Train runs (quickly, at a small resolution).
The data folder (models under it) is a temp dir unless --data-dir is given; the face backend is dlib.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

HOST_STANDINS = """
window.gradioApp = window.gradioApp || function() { return document; };  // gradio 3.41 renders without a shadow root
window.randomId = function() { return "task(" + Math.random().toString(36).slice(2, 12) + ")"; };
window.requestProgress = function(id, container, gallery, atEnd, onProgress) {
    var bar = document.createElement("div"), inner = document.createElement("div");
    bar.className = "progressDiv"; inner.className = "progress"; bar.appendChild(inner);
    container.parentNode.insertBefore(bar, container);
    var started = Date.now(), seenActive = false;
    var finish = function() { bar.remove(); if (atEnd) atEnd(); };
    var poll = function() {
        fetch("./internal/progress", {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({id_task: id})})
        .then(function(r) { return r.json(); }).then(function(res) {
            if (res.completed) return finish();
            var text = res.progress > 0 ? (res.progress * 100).toFixed(0) + "%" : "";
            if (res.eta) text += " ETA: " + Math.round(res.eta) + "s";
            if (res.textinfo) text = res.textinfo + " " + text;
            inner.style.width = ((res.progress || 0) * 100) + "%";
            inner.textContent = text;
            if (res.active) seenActive = true;
            if ((!res.active && seenActive) || (Date.now() - started > 40000 && !res.queued && !res.active)) return finish();
            if (onProgress) onProgress(res);
            setTimeout(poll, 500);
        }).catch(finish);
    };
    poll();
};
window.inputAccordionChecked = function(id, checked) {
    var accordion = document.getElementById(id);
    if (accordion && accordion.facechainVisible) accordion.facechainVisible.checked = checked;
};
setTimeout(function() {  // the header checkbox of InputAccordion (host: javascript/inputAccordion.js)
    document.querySelectorAll(".input-accordion").forEach(function(accordion) {
        var label = accordion.querySelector(".label-wrap"), hidden = document.querySelector("#" + accordion.id + "-checkbox input");
        if (!label || !hidden) return;
        var box = document.createElement("input");
        box.type = "checkbox"; box.className = hidden.className + " input-accordion-checkbox"; box.checked = label.classList.contains("open");
        var linked = true, sync = function() {
            hidden.checked = box.checked; hidden.dispatchEvent(new Event("input", {bubbles: true}));
            hidden.dispatchEvent(new Event("change", {bubbles: true}));
        };
        box.addEventListener("click", function(event) { linked = false; event.stopPropagation(); });
        box.addEventListener("input", sync);
        new MutationObserver(function() {  // as the host: opening the header switches it on until the box is used
            var open = label.classList.contains("open");
            if (linked && box.checked !== open) { box.checked = open; sync(); }
        }).observe(label, {attributes: true, attributeFilter: ["class"]});
        label.querySelector("span").prepend(box);
        var extra = document.getElementById(accordion.id + "-extra");
        if (extra) label.insertBefore(extra, label.lastElementChild);
        accordion.facechainVisible = box;
    });
}, 1500);
"""

HOST_CSS = """
.progressDiv { position: absolute; top: -14px; left: 0; width: 100%; height: 20px; background: #b4c0cc; border-radius: 3px; }
.dark .progressDiv { background: #424c5b; }
.progressDiv .progress { width: 0%; height: 20px; background: #0060df; color: white; font-weight: bold; line-height: 20px;
                         white-space: nowrap; overflow: visible; padding: 0 0.5em; border-radius: 3px; text-align: right; }
.generate-box { position: relative; }
button.generate-box-skip, button.generate-box-interrupt, button.generate-box-interrupting {
    position: absolute; width: 50%; height: 100%; display: none; background: #b4c0cc; }
button.generate-box-interrupt, button.generate-box-interrupting { left: 0; border-radius: 0.5rem 0 0 0.5rem; }
button.generate-box-skip { right: 0; border-radius: 0 0.5rem 0.5rem 0; }
button.tool { max-width: 2.2em; min-width: 2.2em !important; height: 2.4em; align-self: end; line-height: 1em; }
input[type="checkbox"].input-accordion-checkbox { vertical-align: sub; margin-right: 0.5em; }
"""


def page_javascript() -> str:
    """One JS function for `load`: host stand-ins, then every javascript/*.js in global scope (like the host)."""
    sources = [HOST_STANDINS] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "javascript").glob("*.js"))]
    evals = "".join(f"(0, eval)({json.dumps(src)});" for src in sources)
    return f"() => {{ {evals} }}"


def install_demo(ctx) -> None:
    """An identity from ../shared/data and a slow stand-in sampler (Generate then shows progress and portraits)."""
    from modules import processing, shared

    from facechain_ext.identity_creation import IdentityFromPhotos, create_identity_from_photos

    folder = DATA / "faces" / "obama"
    photos = sorted(folder.glob("*.jp*g"))[:4]
    if not ctx.identities.exists("obama"):
        create_identity_from_photos(ctx, IdentityFromPhotos(name="obama", photos=[(p.name, str(p)) for p in photos]))

    class SlowSampler(processing.FakeSampler):
        def sample(self, p, seed, prompt, negative, networks):
            shared.state.sampling_steps = 8
            for step in range(8):
                if shared.state.interrupted or shared.state.skipped:
                    break
                shared.state.sampling_step = step
                time.sleep(0.15)
            return super().sample(p, seed, prompt, negative, networks)

    others = [DATA / "faces" / "obama" / photos[-1].name, DATA / "faces" / "biden" / "face_recognition_knn_train_biden.jpg"]
    processing.fake_sampler = SlowSampler([p for p in others if p.is_file()] or photos)
    try:
        from tiny_models import TinyLatentDiffusion  # tests/tiny_models.py: a tiny real ldm model
    except ImportError:
        print("FaceChain preview: tests/ is not on PYTHONPATH, so no checkpoint is loaded (Train refuses).", flush=True)
        return
    from modules import sd_models

    shared.sd_model = TinyLatentDiffusion(Path(tempfile.mkdtemp(prefix="facechain_preview_tiny_")))
    shared.sd_model.sd_checkpoint_info = sd_models.CheckpointInfo("tiny.safetensors", "tiny [0000000000]", "tiny")


def build_demo(data_dir: Path, demo: bool):
    try:
        import fakehost
    except ImportError:
        sys.exit("Run with PYTHONPATH=tests/fakehost:. from the repository root (the stand-in host lives there).")
    import gradio as gr
    from modules import script_callbacks, shared

    from facechain_ext.webui import register
    from facechain_ext.webui.script import script_class_for

    fakehost.reset_host(data_dir)
    extension = register()
    script_callbacks.ui_settings_callback()
    shared.opts.set("facechain_face_backend", "dlib")
    extension.refresh_settings()
    if demo:
        install_demo(extension.ctx)
    tabs = script_callbacks.ui_tabs_callback()

    css = HOST_CSS + (ROOT / "style.css").read_text(encoding="utf-8")
    with gr.Blocks(css=css, title="FaceChain UI preview", analytics_enabled=False) as page:
        with gr.Tabs(elem_id="tabs"):
            for blocks, title, elem_id in tabs:
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                with gr.Row():  # settings left, results right: the accordion gets the width it has in the webui
                    with gr.Column():
                        gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt")
                        script = script_class_for(extension.ctx)()
                        script.is_img2img = False
                        script.ui(False)
                    with gr.Column():
                        gr.Gallery(label="Output", elem_id="txt2img_gallery", height=360)
        page.load(None, None, None, _js=page_javascript())
    return page


def add_progress_route(app) -> None:
    """POST /internal/progress, answered by the stand-in host's progressapi (the host adds it in webui.py)."""
    from modules import progress

    def internal_progress(body: dict) -> dict:
        return progress.progressapi(progress.ProgressRequest(id_task=body.get("id_task")))

    app.add_api_route("/internal/progress", internal_progress, methods=["POST"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--data-dir", type=Path, default=None, help="webui data folder (default: a new temp dir)")
    parser.add_argument("--demo", action="store_true", help="a prepared identity and a slow stand-in sampler")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="facechain_preview_"))
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    print(f"FaceChain preview: data folder {data_dir}", flush=True)
    page = build_demo(data_dir, args.demo)
    page.queue(concurrency_count=64)  # as the webui does (webui.py): a click never waits behind another one
    app, _, _ = page.launch(server_name="127.0.0.1", server_port=args.port, show_api=False, prevent_thread_lock=True)
    add_progress_route(app)
    page.block_thread()


if __name__ == "__main__":
    main()
