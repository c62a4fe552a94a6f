"""The one object that owns FaceChain's long-lived services for a process (host session, CLI run or test).

The host glue creates one in `register()` and hands it to callbacks, routes and the tab; nothing is stored in
module globals. Every service is created lazily on first use, so building a context costs nothing.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Optional

from .config import Settings

if TYPE_CHECKING:  # imported lazily at runtime: faces pulls numpy/cv2/onnxruntime
    from .faces.analyzer import FaceAnalyzer
    from .fact_runtime import FactRuntime
    from .identities import IdentityStore
    from .jobs import JobQueue
    from .styles import StyleLibrary


class FaceChainContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._analyzers: dict[str, FaceAnalyzer] = {}

    def analyzer(self, backend: Optional[str] = None) -> FaceAnalyzer:
        """The face analyzer for `backend` (default: the configured one), loaded once and shared."""
        from .faces import create_analyzer, resolve_backend

        name = resolve_backend(self.settings, backend or self.settings.face_backend)
        with self._lock:
            if name not in self._analyzers:
                self._analyzers[name] = create_analyzer(self.settings, name)
            return self._analyzers[name]

    def reset_analyzers(self) -> None:
        """Forget loaded face models (settings changed, or the user asked to free memory)."""
        with self._lock:
            self._analyzers.clear()

    def recover_leftovers(self) -> None:
        """At start: finish or undo what a killed process left half-written (our hidden names only) in the identity
        store, the FaceChain LoRA folder and the validation images (see atomic.clean_folder)."""
        from .atomic import clean_folder

        _ = self.identities  # opening the store recovers it
        for folder in (self.settings.facechain_lora_dir, self.settings.models_dir / "training"):
            if folder is not None and folder.is_dir():
                clean_folder(folder)

    @cached_property
    def identities(self) -> IdentityStore:
        from .identities import IdentityStore

        return IdentityStore(self.settings.check_folders().identities_dir)

    @cached_property
    def styles(self) -> StyleLibrary:
        from .styles import StyleLibrary

        return StyleLibrary(self.settings.styles_dirs)

    @cached_property
    def jobs(self) -> JobQueue:
        from .jobs import JobQueue

        return JobQueue()

    @cached_property
    def fact(self) -> FactRuntime:
        """FACT's loaded model and live UNet hook (loaded on the first job that uses FACT)."""
        from .fact_runtime import FactRuntime

        return FactRuntime()
