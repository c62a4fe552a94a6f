"""The "Models and face backends" accordion of the FaceChain tab: what is present and what each feature needs, one
line each; where the files go and their licences behind a details toggle; a Download button per missing model that
FaceChain can fetch and verify, disabled with the reason while downloads are off (Settings -> FaceChain, or
--facechain-offline). Read again on every page load, so a changed setting or a model put in place by hand shows.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .tab_common import error_html, message_html, on_view_open

log = logging.getLogger("facechain")

DOWNLOADS_OFF = "Downloads are off: allow them in Settings → FaceChain (“Allow FaceChain to download optional models”)."
OFFLINE = "FaceChain runs offline (--facechain-offline), so nothing is downloaded."


def _mark(ok: bool) -> str:
    return "<span class='facechain-yes'>✓</span>" if ok else "<span class='facechain-no'>✗</span>"


def status_html(settings: Any) -> str:
    """One line per face backend and optional model (file system only), then the paths behind a details toggle."""
    from ..faces import backend_status
    from ..models import model_status

    rows, details = [], []
    for name, entry in backend_status(settings).items():
        state = "ready" if entry["available"] else "not available"
        rows.append(f"<tr><td>{_mark(entry['available'])} <b>{html.escape(name)}</b></td><td>face analysis</td>"
                    f"<td>{state}</td></tr>")
        details.append(f"<li><b>{html.escape(name)}</b>: {html.escape(entry['reason'] or str(entry['path'] or ''))}</li>")
    for model in model_status(settings):
        if model["present"]:
            state = "present"
        elif model["downloadable"]:
            state = "missing (Download below)"
        else:
            state = "missing (manual install)"
        rows.append(f"<tr><td>{_mark(model['present'])} <b>{html.escape(model['name'])}</b></td>"
                    f"<td>{html.escape(model['required_for'] or model['kind'])}</td><td>{state}</td></tr>")
        installed = ", ".join(str(f.get("installed_as") or f["name"]) for f in model["files"])
        where = f"{model['path']} ({installed})" if model["present"] else model["hint"]
        details.append(f"<li><b>{html.escape(model['name'])}</b>: {html.escape(str(where))} "
                       f"<i>Licence: {html.escape(model['licence'])}.</i></li>")
    return ("<table class='facechain-models'><thead><tr><th>model</th><th>needed for</th><th>status</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            "<details class='facechain-details'><summary>Where the files go, and licences</summary>"
            f"<ul>{''.join(details)}</ul></details>")


def safe_status_html(settings: Any) -> str:
    try:
        return status_html(settings)
    except Exception as exc:  # noqa: BLE001 - the status table must not take the tab down
        log.exception("FaceChain: model status failed")
        return message_html(f"Could not check the models ({html.escape(type(exc).__name__)}: {html.escape(str(exc))}).",
                            kind="error")


class ModelDownloads:
    """The Download buttons' handler: queue the job, then stream its progress until it ends (a generator: gradio
    shows every yielded value, so no timer or JS is needed). Refusals (consent, manual-only) are shown at once."""

    def __init__(self, ctx: Any, *, poll_s: float = 0.5) -> None:
        self.ctx = ctx
        self.poll_s = poll_s

    def download(self, name: str) -> Iterator[str]:
        from ..downloads import submit_download
        from ..errors import FaceChainError

        try:
            job = submit_download(self.ctx, name)
        except FaceChainError as err:
            yield error_html(err)
            return
        while True:
            record = self.ctx.jobs.snapshot(job.id)
            yield download_html(record)
            if record["status"] in ("done", "failed", "cancelled"):
                return
            job.finished_event.wait(self.poll_s)


def download_html(record: dict) -> str:
    """One job record as a status line (pure: tested without gradio)."""
    from ..errors import FaceChainError

    status = record["status"]
    if status == "done":
        return message_html("Downloaded and verified: ready to use.")
    if record.get("error"):
        error = record["error"]
        return error_html(FaceChainError(error.get("code", "download_failed"), error.get("message", "")))
    words = {"queued": "Queued", "running": "Downloading"}.get(status, html.escape(status.capitalize()))
    line = f"<b>{words}</b> · {record['progress'] * 100:.0f}%"
    if record.get("eta_s") is not None:
        line += f" · ETA {record['eta_s']:.0f} s"
    return message_html(line, kind="note")


@dataclass
class DownloadRow:
    name: str
    button: Any
    note: Any
    event: Any  # the button's click event (the status is read again after it)


def download_state(settings: Any, name: str) -> tuple[Any, str]:
    """(button update, note html) for one model: disabled with the reason while downloads are off."""
    from ..models import consent_problem, model_status

    model = next((m for m in model_status(settings) if m["name"] == name), None)
    if model is None or model["present"]:
        return gr.update(interactive=False), message_html("Present." if model else "", kind="note")
    blocked = consent_problem(settings)
    if blocked:
        return gr.update(interactive=False), message_html(OFFLINE if settings.offline else DOWNLOADS_OFF, kind="note")
    size = model["download_size"]
    return (gr.update(interactive=True),
            message_html(f"{size / 1e6:.0f} MB, checked against its published sha256 before use." if size else
                         "Checked against its published sha256 before use.", kind="note"))


def download_rows(ctx: Any) -> list[DownloadRow]:
    """One row per model FaceChain can download: the button and, beside it, why it is disabled or what it fetches."""
    from ..models import model_status

    handlers = ModelDownloads(ctx)
    rows = []
    for model in model_status(ctx.settings):
        if not model["downloadable"]:
            continue
        name = model["name"]
        button_state, note = download_state(ctx.settings, name)
        with gr.Row(equal_height=True, elem_classes=["facechain-download-row"]):
            button = gr.Button(f"Download {name}", size="sm", scale=0, min_width=200, elem_id=f"facechain_download_{name}",
                               interactive=button_state.get("interactive", False))
            output = gr.HTML(note, elem_id=f"facechain_download_{name}_status")
        event = button.click(fn=_download_runner(handlers, name), inputs=[], outputs=[output])
        rows.append(DownloadRow(name, button, output, event))
    return rows


def _download_runner(handlers: ModelDownloads, name: str) -> Callable[[], Iterator[str]]:
    def download_model() -> Iterator[str]:  # a generator function: gradio streams its values
        yield from handlers.download(name)

    return download_model


def build_models(ctx: Any) -> None:
    """The accordion's content in the current gradio context, read again on every page load."""
    status = gr.HTML(safe_status_html(ctx.settings), elem_id="facechain_models_status")
    try:
        rows = download_rows(ctx)
    except Exception as exc:  # noqa: BLE001 - the download buttons must not take the tab down
        log.exception("FaceChain: the model download buttons could not be built")
        gr.Markdown(f"Model downloads are unavailable ({type(exc).__name__}: {exc}).")
        rows = []

    def current_models() -> list[Any]:
        """-> [status html, then (button, note) per download row] as the settings and files are now."""
        values: list[Any] = [safe_status_html(ctx.settings)]
        for row in rows:
            values.extend(download_state(ctx.settings, row.name))
        return values

    outputs = [status, *[c for row in rows for c in (row.button, row.note)]]
    on_view_open(current_models, [], outputs)
    for row in rows:  # a finished download shows in the table (its own line keeps the download's outcome)
        row.event.then(fn=lambda: current_models()[0], inputs=[], outputs=[status], show_progress="hidden")
