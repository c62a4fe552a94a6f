"""The Identities view of the FaceChain tab: photos + name -> Prepare -> crops, rejected photos, stored identity.

Handlers never raise into gradio: every FaceChainError becomes a readable message (code + what to do), anything
unexpected a short "internal error" line (the traceback goes to the console log). They do not take the host's
queue lock: face analysis is not GPU generation and must not wait behind a training job.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Any, Sequence

import gradio as gr

from ..errors import FaceChainError
from .host import js_kwargs

log = logging.getLogger("facechain")

REJECTED_HEADERS = ["photo", "reason", "code"]
IDENTITY_HEADERS = ["name", "photos", "caption", "backend", "created", "LoRAs"]

INTRO = (
    "Upload several photos of **one person** (different days, light and angles help; faces at least ~100 px). "
    "FaceChain turns them upright, checks that every photo shows the same person, crops them to 512x512 and "
    "captions them. Rejected photos are listed with the reason."
)


def message_html(text: str, *, error: bool = False) -> str:
    css = "facechain-error" if error else "facechain-info"
    return f"<div class='{css}'>{text}</div>"


def error_message(err: FaceChainError) -> str:
    return message_html(f"<b>{html.escape(err.code)}</b>: {html.escape(err.message)}", error=True)


def uploaded_photos(files: Sequence[Any] | None) -> list[tuple[str, str]]:
    """(display name, path) for gradio 3 file objects (`.name`, `.orig_name`) and gradio 4 path strings."""
    photos = []
    for item in files or []:
        path = item if isinstance(item, str) else getattr(item, "name", None)
        if not path:
            continue
        label = getattr(item, "orig_name", None) or os.path.basename(path)
        photos.append((str(label), str(path)))
    return photos


def report_view(report: Any) -> tuple[list[tuple[Any, str]], list[list[str]], str]:
    """(gallery items, rejected rows, summary html) for a PreparationReport."""
    gallery = [(p.crop, f"{p.path} · quality {p.score:.2f}") for p in report.accepted if p.crop is not None]
    rejected = [[p.path, p.message, p.code or ""] for p in report.rejected]
    best = f" Best photo: <b>{html.escape(str(report.best_photo))}</b>." if report.best_photo else ""
    notes = "".join(f"<br>{html.escape(n)}" for n in getattr(report, "notes", []))
    summary = (
        f"{len(report.accepted)} of {len(report.photos)} photos accepted; caption "
        f"<code>{html.escape(report.caption)}</code>.{best}{notes}"
    )
    return gallery, rejected, summary


def rejected_rows_from_error(err: FaceChainError) -> list[list[str]]:
    """Per-photo reasons carried by a no_usable_photos error (context `photos`: dicts or PhotoResults)."""
    rows = []
    for photo in err.context.get("photos") or []:
        get = photo.get if isinstance(photo, dict) else (lambda key, obj=photo: getattr(obj, key, None))
        rows.append([str(get("path") or ""), str(get("message") or ""), str(get("code") or "")])
    return rows


def identity_rows(identities: Sequence[Any]) -> list[list[Any]]:
    return [
        [i.name, i.photo_count, i.activation_text, i.backend, str(i.created), len(i.loras or [])]
        for i in identities
    ]


class IdentityHandlers:
    """The view's event handlers, bound to one FaceChainContext; callable directly in tests."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def _names_and_rows(self) -> tuple[list[str], list[list[Any]]]:
        identities = self.ctx.identities.list()
        return [i.name for i in identities], identity_rows(identities)

    def prepare(self, files: Any, name: str, phrase: str, overwrite: bool) -> tuple[Any, ...]:
        """-> (message html, gallery, rejected rows, identities dropdown update, identities table)."""
        from ..prep import options_for, prepare_photos

        gallery: list = []
        rejected: list = []
        try:
            photos = uploaded_photos(files)
            if not photos:
                raise FaceChainError("invalid_request", "Upload at least one photo of the person first.")
            name = (name or "").strip()
            if not name:
                raise FaceChainError("invalid_name", "Give the identity a name (letters, digits, _ and -).")
            report = prepare_photos(photos, self.ctx.analyzer(), options_for(self.ctx.settings, phrase=(phrase or "").strip() or None))
            gallery, rejected, summary = report_view(report)
            identity = self.ctx.identities.create(name, report, overwrite=bool(overwrite))
            message = message_html(f"Identity <b>{html.escape(identity.name)}</b> saved. {summary}")
        except FaceChainError as err:
            rejected = rejected_rows_from_error(err) or rejected
            message = error_message(err)
        except Exception as exc:  # noqa: BLE001 - the UI shows a line, the console keeps the traceback
            log.exception("FaceChain: preparing photos failed")
            message = message_html(f"Internal error: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}", error=True)
        names_update, rows = self._refresh_parts(name if isinstance(name, str) else None)
        return message, gallery, rejected, names_update, rows

    def initial(self) -> tuple[list[str], list[list[Any]]]:
        """Identity names and table rows when the UI is built (an unreadable store shows as empty)."""
        try:
            return self._names_and_rows()
        except FaceChainError:
            return [], []

    def _refresh_parts(self, selected: str | None) -> tuple[Any, list[list[Any]]]:
        try:
            names, rows = self._names_and_rows()
        except FaceChainError:
            names, rows = [], []
        return gr.update(choices=names, value=selected if selected in names else None), rows

    def refresh(self, selected: str | None) -> tuple[Any, list[list[Any]]]:
        return self._refresh_parts(selected)

    def delete(self, name: str | None) -> tuple[Any, ...]:
        """-> (message html, identities dropdown update, identities table)."""
        try:
            if not name:  # nothing chosen, or the confirmation was declined (the JS then sends null)
                raise FaceChainError("invalid_request", "Nothing deleted: choose an identity and confirm.")
            self.ctx.identities.delete(name)
            message = message_html(f"Identity <b>{html.escape(name)}</b> deleted.")
        except FaceChainError as err:
            message = error_message(err)
        names_update, rows = self._refresh_parts(None)
        return message, names_update, rows

    def show(self, name: str | None) -> tuple[Any, str]:
        """-> (best photo path or None, summary html) for the chosen identity."""
        if not name:
            return None, ""
        try:
            identity = self.ctx.identities.get(name)
        except FaceChainError as err:
            return None, error_message(err)
        best = identity.best_photo_path
        summary = (
            f"<b>{html.escape(identity.name)}</b>: {identity.photo_count} photos, caption "
            f"<code>{html.escape(identity.activation_text)}</code>, backend {html.escape(str(identity.backend))}, "
            f"{len(identity.loras or [])} LoRA(s)."
        )
        return (str(best) if best and os.path.isfile(best) else None), message_html(summary)


def build(ctx: Any) -> gr.Blocks:
    handlers = IdentityHandlers(ctx)
    initial_choices, initial_rows = handlers.initial()
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column():
                photos = gr.File(label="Photos of one person", file_count="multiple", file_types=["image"],
                                 elem_id="facechain_identity_photos")
                name = gr.Textbox(label="Identity name", placeholder="letters, digits, _ and - (max 64)", max_lines=1,
                                  elem_id="facechain_identity_name")
                phrase = gr.Textbox(label="Caption phrase (optional)", placeholder="default from the photos, e.g. a beautiful woman",
                                    max_lines=1)
                overwrite = gr.Checkbox(label="Replace an existing identity with this name", value=False)
                prepare = gr.Button("Prepare", variant="primary", elem_id="facechain_identity_prepare")
            with gr.Column():
                message = gr.HTML(elem_id="facechain_identity_message")
                gallery = gr.Gallery(label="Training crops", columns=4, elem_id="facechain_identity_gallery")
                rejected = gr.Dataframe(headers=REJECTED_HEADERS, label="Rejected photos", interactive=False,
                                        wrap=True)
        gr.Markdown("### Stored identities")
        with gr.Row():
            chosen = gr.Dropdown(label="Identity", choices=initial_choices, elem_id="facechain_identity_choice")
            refresh = gr.Button("Refresh", elem_id="facechain_identity_refresh")
            delete = gr.Button("Delete", variant="stop", elem_id="facechain_identity_delete")
        with gr.Row():
            best = gr.Image(label="Best photo", type="filepath", interactive=False)
            details = gr.HTML()
        table = gr.Dataframe(value=initial_rows or None, headers=IDENTITY_HEADERS, label="Identities", interactive=False,
                             wrap=True)

        prepare.click(fn=handlers.prepare, inputs=[photos, name, phrase, overwrite],
                      outputs=[message, gallery, rejected, chosen, table])
        refresh.click(fn=handlers.refresh, inputs=[chosen], outputs=[chosen, table])
        # the JS asks for confirmation first (javascript/facechain.js)
        delete.click(fn=handlers.delete, inputs=[chosen], outputs=[details, chosen, table],
                     **js_kwargs("facechain_confirm_delete"))
        chosen.change(fn=handlers.show, inputs=[chosen], outputs=[best, details])
    return block
