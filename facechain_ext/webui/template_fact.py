"""FACT in template face passes: the FaceChain accordion's FACT hook on one img2img inpainting pass.

A pass whose identity uses FACT (conditioning "fact"/"lora+fact", or "auto" resolved to FACT) gets a
`TemplatePassScript`: the accordion script (`script.FaceChainScript`) with the identity and FACT fields as its
arguments, so `fact_hook` runs for that pass exactly as for an accordion generation: `process` → `prepare` (the
FactJob on `p`), `process_before_every_sampling` → the hook goes on the UNet, `on_cfg_denoiser` routes the rows,
`postprocess` → the hook comes off (or the next `process` / a model load takes it off, after a failed pass).
The template job builds the prompt (LoRA tag when used, trigger, phrase) and fuses/scores the composed candidate
itself (`templates.run.finish_candidate`), so this script leaves prompts and images alone.

`fact_unavailable_reason` is the check before queueing: the FACT files (named, with how to get them), an SD1.x
checkpoint (the same conditions `fact_hook.prepare` / `fact_hook.unsupported_reason` apply per generation; on Forge
the hook is the middle patch of each pass's UNet clone, `webui/forge_fact.py`).
"""

from __future__ import annotations

from typing import Any, Optional

from ..context import FaceChainContext
from ..generation_state import get_state
from ..infotext import ARG_INFOTEXT_KEYS
from .script import FaceChainScript


class TemplatePassScript(FaceChainScript):
    """The accordion script for one template face pass: FACT's hook only (see the module doc)."""

    def process(self, p: Any, *script_args: Any) -> None:
        super().process(p, *script_args)
        # The candidate's infotext describes the template job (`FaceChain template faces` per face), not one pass
        # of the accordion: its argument keys would paste back as an accordion generation for this one identity.
        for key in ARG_INFOTEXT_KEYS:
            p.extra_generation_params.pop(key, None)

    def before_process_batch(self, p: Any, *script_args: Any, **kwargs: Any) -> None:
        """The pass's prompt already has the identity's words (template_runner.make_pass)."""

    def postprocess_image(self, p: Any, pp: Any, *script_args: Any) -> None:
        """The template fuses and scores the composed candidate, not the pass's crop."""


def fact_script_args(ident: Any) -> dict[str, Any]:
    """The accordion arguments of a FACT pass: identity and FACT fields. "fact" even for "lora+fact": the LoRA tag is
    in the pass's prompt already; fusion and ranking are the template job's."""
    return {"identity": ident.identity, "conditioning": "fact", "fact_scale": float(ident.fact_scale),
            "fact_photo_count": int(ident.fact_photo_count), "fact_photos": list(ident.fact_photos) or None,
            "fusion": {"enabled": False}, "ranking": {"enabled": False}}


def add_fact_script(ctx: FaceChainContext, p: Any, ident: Any) -> None:
    """Append a TemplatePassScript with `fact_script_args(ident)` to the pass's own runner (never the host's)."""
    script = TemplatePassScript(ctx)
    script.filename, script.name, script.alwayson = __file__, "facechain", True
    script.args_from, script.args_to = len(p.script_args), len(p.script_args) + 1
    p.scripts.scripts = [*p.scripts.scripts, script]
    p.scripts.alwayson_scripts = [*p.scripts.alwayson_scripts, script]
    p.script_args = [*p.script_args, fact_script_args(ident)]


def fact_applied(p: Any) -> bool:
    """After a pass: FACT's hook ran on its sampling and was not turned off (infotext.used_conditioning's rule)."""
    fact = getattr(get_state(p), "fact", None)
    return fact is not None and fact.applied and fact.off is None


def fact_unavailable_reason(ctx: FaceChainContext, sd_model: Any) -> Optional[str]:
    """Why FACT cannot run in this host now (every reason, one sentence each), or None. A directory look-up and
    the model-family check; nothing is loaded."""
    from ..diffusion.family import LABELS, model_family
    from ..portraits import fact_problem
    reasons = []
    missing = fact_problem(ctx)  # names the first missing file, its folder and how to get it
    if missing:
        reasons.append(missing)
    family = model_family(sd_model)
    if sd_model is None:
        reasons.append("FACT needs a Stable Diffusion 1.x checkpoint and none is loaded.")
    elif family != "sd1":
        info = getattr(sd_model, "sd_checkpoint_info", None)
        name = getattr(info, "title", None) or getattr(info, "name", None) or "the loaded checkpoint"
        reasons.append(f"FACT works with Stable Diffusion 1.x checkpoints only; {name} is "
                       f"{LABELS.get(family, family)}: load an SD1.5-based checkpoint.")
    return " ".join(reasons) or None
