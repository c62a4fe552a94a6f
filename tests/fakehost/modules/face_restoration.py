"""Stand-in for modules/face_restoration.py (A1111 1.10.1): the restorer base class and `restore_faces`.

Same names and rule as the host: `restore_faces(np_image)` picks the first of `shared.face_restorers` whose `name()`
equals `opts.face_restoration_model` (any restorer when that option is None) and returns the image unchanged when none
matches. The host registers GFPGAN/CodeFormer at start-up; this stand-in starts with none (tests add their own).
"""

from __future__ import annotations

from modules import shared


class FaceRestoration:
    """Base of the host's restorers (GFPGAN, CodeFormer): a name shown in Settings, and `restore` on a whole image."""

    def name(self) -> str:
        return "None"

    def restore(self, np_image):
        return np_image


def restore_faces(np_image):
    """RGB uint8 array in, same size out: the restorer chosen in Settings, or the input itself when none matches."""
    wanted = shared.opts.face_restoration_model
    for restorer in shared.face_restorers:
        if wanted is None or restorer.name() == wanted:
            return restorer.restore(np_image)
    return np_image
