"""FACT at generation time, the host-independent part: what one job asks for, and the per-context runtime that owns
the loaded FACT model and the live UNet hook.

`FactJob` lives with the job on the processing object `p` (it keeps the job's face tokens, so the hires pass and a
mid-job model switch reuse them). `FactRuntime` lives on the FaceChainContext (`ctx.fact`): the model is loaded once
per context, moved to the host's device/dtype when a job needs it and parked on the CPU between jobs unless the user
keeps it on the GPU; at most one hook (FactAttachment) is live, with the `p` it belongs to. The host glue
(webui/fact_hook.py) drives both from the Script hooks and host callbacks.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

if TYPE_CHECKING:  # torch and the FACT modules load when a job uses FACT, not at import
    import torch
    from torch import nn

    from .fact.adapter import FactAdapter
    from .fact.attach import FaceTokens, FactAttachment, RowRouter
    from .fact.files import FactFiles
    from .fact.model import FactModel

Conditioning = Literal["auto", "lora", "fact", "lora+fact"]
CONDITIONINGS: tuple[Conditioning, ...] = ("auto", "lora", "fact", "lora+fact")


def resolve_conditioning(mode: str, *, has_lora: bool, fact_installed: bool) -> tuple[bool, bool]:
    """(use the identity LoRA, use FACT) for a `conditioning` choice.

    "auto": the identity's LoRA when it has one, else FACT when its model files are installed (else neither: the
    trigger and phrase alone). "lora", "fact", "lora+fact": as named (a missing part is reported by the caller).
    """
    if mode == "auto":
        return (True, False) if has_lora else (False, fact_installed)
    if mode not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {mode!r}; choose one of {CONDITIONINGS}")
    return "lora" in mode, "fact" in mode


@dataclass
class FactJob:
    """FACT's part of one generation job.

    identity_dir: the identity folder (photos and token cache); photo_count / photos: which photos (the best by quality,
    or these names); scale: FACT's s (FACECHAIN_FACTS.md §5: 0.5 txt2img, 0.55 inpainting); files: the model files
    found when the job started; tokens: computed on first sampling, then reused (hires pass, model switch);
    off: why FACT stopped for this job (None while it runs); notes: shown once in the job's comments.
    """

    identity_dir: Path
    scale: float
    files: FactFiles
    photo_count: int = 1
    photos: tuple[str, ...] = ()
    tokens: Optional[FaceTokens] = None
    used_photos: list[str] = field(default_factory=list)
    off: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    applied: bool = False  # the hook ran on at least one sampling pass

    def turn_off(self, reason: str) -> bool:
        """Stop FACT for the rest of the job; True the first time (the caller shows the reason once)."""
        first = self.off is None
        if first:
            self.off = reason
        return first


def _same_files(a: Optional[FactFiles], b: FactFiles) -> bool:
    """The same weight files (symlinked or relative paths resolved)."""
    if a is None:
        return False
    return a.variant == b.variant and all(
        Path(x).resolve() == Path(y).resolve() for x, y in ((a.encoder, b.encoder), (a.adapter, b.adapter))
    )


class FactRuntime:
    """FACT state of one FaceChainContext: the loaded model and the live hook (see module doc).

    The host runs one generation at a time (its queue lock); the lock here only guards loading against a second
    thread (API + UI) asking at the same moment.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.model: Optional[FactModel] = None
        self.attachment: Optional[FactAttachment] = None
        self.job: Optional[FactJob] = None
        self._owner: Optional[Callable[[], Any]] = None
        self._router: Optional[RowRouter] = None
        self._unets: list[weakref.ref] = []  # every UNet we hooked (swept on cleanup)

    @property
    def router(self) -> RowRouter:
        if self._router is None:
            from .fact.attach import RowRouter

            self._router = RowRouter()
        return self._router

    # ---- the model -------------------------------------------------------------------------------------------
    def load(self, files: FactFiles, device: torch.device, dtype: torch.dtype,
             loader: Optional[Callable[..., FactModel]] = None) -> FactModel:
        """The FACT model of `files` on `device` in `dtype`: loaded the first time, moved (not reloaded) later."""
        with self._lock:
            if self.model is not None and not _same_files(self.model.files, files):
                self.model = None  # another variant or file: drop the old weights before loading new ones
            if self.model is None:
                if loader is None:
                    from .fact.model import load_fact_model as loader
                self.model = loader(files, device=device, dtype=dtype)
            elif self.model.device != device or self.model.dtype != dtype:
                self.model.to(device, dtype)
            return self.model

    def park(self, device: Any) -> None:
        """Move the loaded model to `device` (the CPU between jobs), keeping its dtype."""
        if self.model is not None:
            self.model.to(device)

    def forget_model(self) -> None:
        with self._lock:
            self.model = None

    # ---- the hook --------------------------------------------------------------------------------------------
    def begin(self, p: Any, job: FactJob) -> None:
        """`job` of processing object `p` is the one the hook serves from now on."""
        try:
            self._owner = weakref.ref(p)
        except TypeError:
            self._owner = lambda p=p: p
        self.job = job

    def owns(self, p: Any) -> bool:
        return self._owner is not None and self._owner() is p

    def owner(self) -> Any:
        """The processing object of the generation the hook serves (None when none, or it is gone)."""
        return self._owner() if self._owner is not None else None

    def attached_to(self, unet: nn.Module) -> bool:
        return self.attachment is not None and self.attachment.attached and self.attachment.unet is unet

    def attach(self, unet: nn.Module, adapter: FactAdapter, tokens: FaceTokens, scale: float,
               offload_device: Optional[Any] = None) -> FactAttachment:
        """Hook `adapter` (the loaded model's) into `unet`, replacing any earlier hook."""
        from .fact.attach import attach, remove_fact_hooks

        self.detach()
        remove_fact_hooks(unet)  # strays of a job whose runtime was lost
        blocks = [(site, adapter.block(site)) for site in adapter.sites]
        self.attachment = attach(unet, blocks, tokens, scale=scale, router=self.router, offload_device=offload_device)
        if not any(ref() is unet for ref in self._unets):
            self._unets = [ref for ref in self._unets if ref() is not None] + [weakref.ref(unet)]
        return self.attachment

    def detach(self) -> bool:
        """Remove the live hook (and any stray FACT hook on a UNet we hooked); True if something was removed."""
        from .fact.attach import remove_fact_hooks

        removed = self.attachment is not None and self.attachment.attached
        if self.attachment is not None:
            self.attachment.detach()
            self.attachment = None
        for ref in self._unets:
            unet = ref()
            if unet is not None:
                removed = remove_fact_hooks(unet) > 0 or removed
        if self._router is not None:
            self._router.clear()
        return removed

    def end(self) -> bool:
        """The job is over (finished, failed or superseded): no hook, no owner."""
        self._owner = None
        self.job = None
        return self.detach()
