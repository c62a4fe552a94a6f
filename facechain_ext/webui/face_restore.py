"""The host's own face restoration (GFPGAN / CodeFormer) as FaceChain's `fusion.restore.Restorer`.

Host facts (A1111 1.10.1; Forge keeps the same module): `modules.face_restoration.restore_faces(np_image)` takes and
returns an RGB uint8 (H, W, 3) array and uses the first of `shared.face_restorers` whose `name()` equals
`shared.opts.face_restoration_model` (Settings → Face restoration; CodeFormer's own weight is `opts.code_former_weight`,
0.5 by default, the value ReActor's UI also defaults to). When none matches it returns the image UNCHANGED, silently,
so the lookup below checks the same rule first and says why instead. `modules/processing.py` brackets the call with
`devices.torch_gc()`; so do we.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import FaceChainError
from ..fusion.restore import Restorer


def _unavailable(reason: str) -> FaceChainError:
    return FaceChainError("backend_unavailable", reason, backend="face_restoration")


def chosen_restorer(shared: Any) -> Any:
    """The restorer object the host's `restore_faces` would use (modules/face_restoration.py), or FaceChainError."""
    restorers = list(getattr(shared, "face_restorers", None) or [])
    model = getattr(shared.opts, "face_restoration_model", None)
    chosen = [r for r in restorers if model is None or r.name() == model]
    if not chosen:
        names = ", ".join(r.name() for r in restorers) or "none installed"
        raise _unavailable(
            f"the host has no face restorer named {model!r} (available: {names}); choose one in Settings → Face restoration"
        )
    return chosen[0]


def host_face_restorer() -> Restorer:
    """A Restorer calling the host's `face_restoration.restore_faces`; FaceChainError("backend_unavailable") when the
    host has no such module or no restorer matching its Settings."""
    try:
        from modules import devices, face_restoration, shared
    except ImportError as exc:
        raise _unavailable(f"this webui has no face restoration module ({exc})") from exc
    chosen_restorer(shared)

    def restore(np_image: np.ndarray) -> np.ndarray:
        devices.torch_gc()
        try:
            return face_restoration.restore_faces(np_image)
        finally:
            devices.torch_gc()

    return restore
