"""The Identities view of the FaceChain tab: photos + name -> Prepare -> crops, rejected photos, stored identity.

Handlers never raise into gradio: every FaceChainError becomes a readable message (what happened, what to do; the
code stays out of sight), anything unexpected a short line (the traceback goes to the console log). They do not take
the host's queue lock: face analysis is not GPU generation and must not wait behind a training job. The list and
the table are read again on every page load and when the view is opened, so an identity made through the API or
the CLI shows up without a refresh.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Any, Sequence

import gradio as gr

from ..errors import FaceChainError
from .host import js_kwargs
from .tab_common import (
    choices_update,
    error_html,
    internal_error_html,
    message_html,
    on_view_open,
    refresh_button,
    table_value,
    with_tables,
)

log = logging.getLogger("facechain")

REJECTED_HEADERS = ["photo", "why it was not used"]
IDENTITY_HEADERS = ["name", "photos", "caption", "backend", "created", "LoRAs"]

INTRO = (
    "Upload several photos of **one person** (different days, light and angles help; faces at least ~100 px). "
    "FaceChain turns them upright, checks that every photo shows the same person, crops them to 512x512 and "
    "captions them. Rejected photos are listed with the reason."
)


def error_message(err: FaceChainError) -> str:
    return error_html(err)


def uploaded_photos(files: Sequence[Any] | None) -> list[tuple[str, str]]:
    """(display name, path) for gradio 3 file objects (`.name`, `.orig_name`) and gradio 4 path strings.

    The display name is a bare file name: gradio 3.41 sets `orig_name` to its temp copy's full path
    (/tmp/gradio/<hash>/me.jpg), which would otherwise fill messages, captions and the rejected table.
    """
    photos = []
    for item in files or []:
        path = item if isinstance(item, str) else getattr(item, "name", None)
        if not path:
            continue
        label = os.path.basename(str(getattr(item, "orig_name", None) or path)) or os.path.basename(path)
        photos.append((label, str(path)))
    return photos


def report_view(report: Any) -> tuple[list[tuple[Any, str]], list[list[str]], str]:
    """(gallery items, rejected rows, summary html) for a PreparationReport."""
    gallery = [(p.crop, f"{p.path} · quality {p.score:.2f}") for p in report.accepted if p.crop is not None]
    rejected = [[p.path, reason_text(p.path, p.message)] for p in report.rejected]
    best = f" Best photo: <b>{html.escape(str(report.best_photo))}</b>." if report.best_photo else ""
    notes = "".join(f"<br>{html.escape(n)}" for n in getattr(report, "notes", []))
    summary = (
        f"{len(report.accepted)} of {len(report.photos)} photos accepted; caption "
        f"<code>{html.escape(report.caption)}</code>.{best}{notes}"
    )
    return gallery, rejected, summary


def reason_text(photo: str, message: str) -> str:
    """The reason as the table shows it: without the file name its row already shows, as a sentence."""
    text = str(message or "").strip()
    for prefix in (f"{photo}: ", f"{photo} "):
        if photo and text.startswith(prefix):
            text = text[len(prefix):]
            break
    return text[:1].upper() + text[1:]


def rejected_rows_from_error(err: FaceChainError) -> list[list[str]]:
    """Per-photo reasons carried by a no_usable_photos error (context `photos`: dicts or PhotoResults)."""
    rows = []
    for photo in err.context.get("photos") or []:
        get = photo.get if isinstance(photo, dict) else (lambda key, obj=photo: getattr(obj, key, None))
        path = str(get("path") or "")
        rows.append([path, reason_text(path, str(get("message") or ""))])
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
        from ..identity_creation import IdentityFromPhotos, create_identity_from_photos

        gallery: list = []
        rejected: list = []
        try:
            photos = uploaded_photos(files)
            if not photos:
                raise FaceChainError("invalid_request", "Upload at least one photo of the person first.")
            name = (name or "").strip()
            if not name:
                raise FaceChainError("invalid_name", "Give the identity a name (letters, digits, _ and -).")
            request = IdentityFromPhotos(name=name, photos=photos, overwrite=bool(overwrite),
                                         phrase=(phrase or "").strip() or None)
            created = create_identity_from_photos(self.ctx, request)
            gallery, rejected, summary = report_view(created.report)
            message = message_html(f"Identity <b>{html.escape(created.name)}</b> saved. {summary}")
        except FaceChainError as err:
            rejected = rejected_rows_from_error(err) or rejected
            message = _no_usable_html(err) if rejected else error_html(err)
        except Exception as exc:  # noqa: BLE001 - the UI shows a line, the console keeps the traceback
            log.exception("FaceChain: preparing photos failed")
            message = internal_error_html(exc)
        names_update, rows = self._refresh_parts(name if isinstance(name, str) else None)
        return message, gallery, rejected, names_update, rows

    def initial(self) -> tuple[list[str], list[list[Any]]]:
        """Identity names and table rows when the UI is built (an unreadable store shows as empty)."""
        try:
            return self._names_and_rows()
        except FaceChainError:
            return [], []

    def _refresh_parts(self, selected: str | None) -> tuple[Any, list[list[Any]]]:
        names, rows = self.initial()
        return choices_update(names, selected), rows

    def refresh(self, selected: str | None) -> tuple[Any, list[list[Any]]]:
        """-> (identities dropdown update, identities table): as they are now (page load, view opened, 🔄)."""
        return self._refresh_parts(selected)

    def delete(self, name: str | None, shown_name: str | None = None) -> tuple[Any, ...]:
        """-> (details html, identities dropdown, table, best photo, crops gallery, rejected rows, prepare message).

        A declined confirmation (the JS sends no name) changes nothing. After a delete nothing of the deleted
        identity stays on screen: its details and best photo, and its crops and report when the view still shows
        the preparation of that name (`shown_name`, the name field).
        """
        keep = gr.update()
        if not name:
            return (message_html("Nothing was deleted.", kind="note"), keep, keep, keep, keep, keep, keep)
        try:
            from ..identity_creation import delete_identity

            delete_identity(self.ctx, name)  # refused (job_running) while a training uses it
        except FaceChainError as err:
            names_update, rows = self._refresh_parts(name)
            return error_html(err), names_update, rows, keep, keep, keep, keep
        names_update, rows = self._refresh_parts(None)
        shown = (shown_name or "").strip() == name
        return (message_html(f"Identity <b>{html.escape(name)}</b> deleted."), names_update, rows, None,
                [] if shown else keep, [] if shown else keep, "" if shown else keep)

    def show(self, name: str | None) -> tuple[Any, Any]:
        """-> (best photo path or None, summary html) for the chosen identity.

        With none chosen (the dropdown was just cleared by a delete) the message stays as it is.
        """
        if not name:
            return None, gr.update()
        try:
            identity = self.ctx.identities.get(name)
        except FaceChainError as err:
            return None, error_html(err)
        best = identity.best_photo_path
        summary = (
            f"<b>{html.escape(identity.name)}</b>: {identity.photo_count} photos, caption "
            f"<code>{html.escape(identity.activation_text)}</code>, face analysis by {html.escape(str(identity.backend))}, "
            f"{len(identity.loras or [])} LoRA(s)."
        )
        return (str(best) if best and os.path.isfile(best) else None), message_html(summary)


def _no_usable_html(err: FaceChainError) -> str:
    """no_usable_photos with its per-photo reasons in the table below: one short sentence here."""
    count = len(err.context.get("photos") or [])
    return message_html(f"None of the {count} photos can be used for training; the table below says why for each.",
                        kind="error")


def build(ctx: Any) -> gr.Blocks:
    handlers = IdentityHandlers(ctx)
    initial_choices, initial_rows = handlers.initial()
    with gr.Blocks(analytics_enabled=False) as block:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(min_width=320):
                photos = gr.File(label="Photos of one person", file_count="multiple", file_types=["image"],
                                 elem_id="facechain_identity_photos")
                name = gr.Textbox(label="Identity name", placeholder="letters, digits, _ and - (max 64)", max_lines=1,
                                  elem_id="facechain_identity_name")
                phrase = gr.Textbox(label="Caption phrase (optional)", placeholder="default from the photos, e.g. a beautiful woman",
                                    max_lines=1)
                overwrite = gr.Checkbox(label="Replace if the name exists", value=False)
                prepare = gr.Button("Prepare", variant="primary", elem_id="facechain_identity_prepare")
            with gr.Column(min_width=320):
                message = gr.HTML(elem_id="facechain_identity_message")
                gallery = gr.Gallery(label="Training crops (accepted photos)", columns=4, height=300, object_fit="contain",
                                     elem_id="facechain_identity_gallery")
                rejected = gr.Dataframe(value=table_value(REJECTED_HEADERS, []), headers=REJECTED_HEADERS,
                                        label="Rejected photos", interactive=False, wrap=True,
                                        elem_id="facechain_identity_rejected")
        gr.Markdown("### Stored identities")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                with gr.Row():
                    chosen = gr.Dropdown(label="Identity", choices=initial_choices, elem_id="facechain_identity_choice")
                    refresh = refresh_button("facechain_identity_refresh", "Identities: refresh")
                    delete = gr.Button("Delete identity", variant="stop", size="sm", scale=0, min_width=140,
                                       elem_id="facechain_identity_delete")
                details = gr.HTML(elem_id="facechain_identity_details")
            best = gr.Image(label="Best photo", type="filepath", interactive=False, height=256, scale=1, min_width=200,
                            elem_id="facechain_identity_best")
        table = gr.Dataframe(value=table_value(IDENTITY_HEADERS, initial_rows), headers=IDENTITY_HEADERS,
                             label="Identities", interactive=False, wrap=True, elem_id="facechain_identity_table")

        prepare.click(fn=with_tables(handlers.prepare, {2: REJECTED_HEADERS, 4: IDENTITY_HEADERS}),
                      inputs=[photos, name, phrase, overwrite], outputs=[message, gallery, rejected, chosen, table])
        lists = dict(fn=with_tables(handlers.refresh, {1: IDENTITY_HEADERS}), inputs=[chosen], outputs=[chosen, table])
        refresh.click(**lists)
        on_view_open(**lists)
        # the JS asks for confirmation first (javascript/facechain.js)
        delete.click(fn=with_tables(handlers.delete, {2: IDENTITY_HEADERS}), inputs=[chosen, name],
                     outputs=[details, chosen, table, best, gallery, rejected, message], **js_kwargs("facechain_confirm_delete"))
        chosen.change(fn=handlers.show, inputs=[chosen], outputs=[best, details], show_progress="hidden")
    return block
