"""Which faces get which identity, in which order, with which seed and crop: checked before any pass runs.

Every problem with the request is a FaceChainError with its own code (all 422 except unknown identities):
`invalid_request` (no face chosen, unknown conditioning), `face_index_out_of_range`, `duplicate_face`,
`face_too_small`; identities are resolved by the caller (404 `identity_not_found`, the project's convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import FaceChainError
from .faces import MIN_FACE_SIDE, TemplateFace
from .request import CONDITIONINGS, TemplateArgs, TemplateFaceChoice

# "Only masked" context around each face: the host grows the mask's box by this padding before cropping it to the
# working resolution (modules/processing.py, `masking.get_crop_region_v2(mask, inpaint_full_res_padding)`). Half a
# face of context gives the model the hairline, ears and collar to match; the host's own default is 32 px.
PADDING_FACE_FRACTION = 0.5
MIN_PADDING = 32


@dataclass(frozen=True)
class FacePass:
    """One img2img inpainting pass: one template face, one identity, one conditioning."""

    order: int  # position among the passes (left to right)
    choice: TemplateFaceChoice
    face: TemplateFace
    padding: int  # inpaint_full_res_padding in px

    @property
    def index(self) -> int:
        return self.face.index


def plan_passes(args: TemplateArgs, faces: Sequence[TemplateFace]) -> list[FacePass]:
    """Validated passes, left to right by template face; FaceChainError naming the offending `faces[i]`."""
    if not args.faces:
        raise FaceChainError("invalid_request", "Choose at least one face of the template to replace.", field="faces")
    seen: dict[int, int] = {}
    for position, choice in enumerate(args.faces):
        where = f"faces[{position}]"
        if not 0 <= choice.index < len(faces):
            raise FaceChainError(
                "face_index_out_of_range",
                f"{where}.index: {choice.index} is not a face of the template; it has {len(faces)} "
                f"face{'s' if len(faces) != 1 else ''} (index 0 to {len(faces) - 1}, left to right).",
                field=f"{where}.index", index=choice.index, faces=len(faces),
            )
        if choice.index in seen:
            raise FaceChainError(
                "duplicate_face",
                f"{where}.index: face {choice.index} is already assigned by faces[{seen[choice.index]}]; each face "
                "can take one identity.",
                field=f"{where}.index", index=choice.index,
            )
        seen[choice.index] = position
        if choice.conditioning not in CONDITIONINGS:
            raise FaceChainError(
                "invalid_request",
                f"{where}.conditioning: {choice.conditioning!r} is not one of {', '.join(CONDITIONINGS)}.",
                field=f"{where}.conditioning",
            )
        side = faces[choice.index].face.long_side
        if side < MIN_FACE_SIDE:
            raise FaceChainError(
                "face_too_small",
                f"{where}: face {choice.index} is {side:.0f} px; faces under {MIN_FACE_SIDE} px cannot be regenerated. "
                "Use a larger template.",
                field=f"{where}.index", index=choice.index, long_side=round(float(side), 1),
            )
    ordered = sorted(args.faces, key=lambda c: c.index)
    return [
        FacePass(order=i, choice=c, face=faces[c.index], padding=padding_for(faces[c.index], args.padding))
        for i, c in enumerate(ordered)
    ]


def padding_for(face: TemplateFace, requested: int | None) -> int:
    if requested is not None:
        return int(requested)
    return max(MIN_PADDING, int(round(PADDING_FACE_FRACTION * face.face.long_side)))


def candidate_seeds(base_seed: int, n: int) -> list[int]:
    """Seed of each candidate (all its face passes use it): consecutive, as the host numbers a batch's seeds."""
    return [int(base_seed) + k for k in range(int(n))]
