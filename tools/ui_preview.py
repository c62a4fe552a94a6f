"""Dev tool: show the FaceChain tab and the txt2img accordion in a browser, without a real webui.

    PYTHONPATH=tests/fakehost:. .venv/bin/python tools/ui_preview.py [--port 7899] [--data-dir DIR]

Builds the page the way AUTOMATIC1111 does, on the stand-in host of tests/fakehost: register() wires the
extension, the host's `ui_tabs_callback()` returns the FaceChain Blocks, rendered in a tab with elem_id
`tab_facechain` (so style.css's scoped selectors apply); the Script's accordion goes in a second tab. The host's
javascript/*.js injection is reproduced with an indirect eval on page load, and the root style.css is passed as
`css=`. The host's own page helpers our JS calls (`gradioApp`, `randomId`, `requestProgress`) are replaced by small
stand-ins (the progress stand-in just ends after a second: the fake host has no /internal/progress route).

The data folder (models under it) is a temp dir unless --data-dir is given; the face backend is dlib.
The stand-in host comes from PYTHONPATH (as pytest's `pythonpath` setting does for the tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HOST_STANDINS = """
window.gradioApp = window.gradioApp || function() { return document; };  // gradio 3.41 renders without a shadow root
window.randomId = window.randomId || function() { return Math.random().toString(36).slice(2, 12); };
window.requestProgress = window.requestProgress || function(id, container, gallery, atEnd, onProgress) {
    setTimeout(function() { if (atEnd) atEnd(); }, 1000);
};
"""


def page_javascript() -> str:
    """One JS function for `load`: host stand-ins, then every javascript/*.js in global scope (like the host)."""
    sources = [HOST_STANDINS] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "javascript").glob("*.js"))]
    evals = "".join(f"(0, eval)({json.dumps(src)});" for src in sources)
    return f"() => {{ {evals} }}"


def build_demo(data_dir: Path):
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
    tabs = script_callbacks.ui_tabs_callback()

    css = (ROOT / "style.css").read_text(encoding="utf-8")
    with gr.Blocks(css=css, title="FaceChain UI preview", analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            for blocks, title, elem_id in tabs:
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt")
                script = script_class_for(extension.ctx)()
                script.is_img2img = False
                script.ui(False)
        demo.load(None, None, None, _js=page_javascript())
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7899)
    parser.add_argument("--data-dir", type=Path, default=None, help="webui data folder (default: a new temp dir)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="facechain_preview_"))
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    print(f"FaceChain preview: data folder {data_dir}", flush=True)
    demo = build_demo(data_dir)
    demo.queue().launch(server_name="127.0.0.1", server_port=args.port, show_api=False)


if __name__ == "__main__":
    main()
