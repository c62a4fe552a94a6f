"""The 16 SD1.x transformer blocks FACT adapts, named both ways: diffusers module paths <-> compvis (ldm) paths.

FACT's checkpoints name each adapter by its diffusers path (`<block>.attn2.processor.*`, the key the diffusers
UNet's `state_dict` gives a processor module; modelscope/facechain face_adapter/face_adapter_v1.py `load_adapter`).
The host runs the compvis `UNetModel` (ldm/modules/diffusionmodules/openaimodel.py), whose SpatialTransformers sit at
index 1 of the input/output blocks listed here. This table is the ONE place the two namings meet.
"""

from __future__ import annotations

from dataclasses import dataclass

# Checkpoint keys of one adapter block: f"{site.diffusers}{PROCESSOR_INFIX}{suffix}".
PROCESSOR_INFIX = ".attn2.processor."


@dataclass(frozen=True)
class Site:
    """One adapted transformer block.

    diffusers: path in diffusers' UNet2DConditionModel (a BasicTransformerBlock).
    compvis: path in ldm's UNetModel (a BasicTransformerBlock).
    hidden: the block's channel count h (320, 640 or 1280 for SD1.x).
    """

    diffusers: str
    compvis: str
    hidden: int

    @property
    def checkpoint_prefix(self) -> str:
        """Prefix of this block's keys in a FACT adapter checkpoint."""
        return self.diffusers + PROCESSOR_INFIX


def _site(down_or_up: str, block: int, attn: int, compvis_block: str, hidden: int) -> Site:
    return Site(
        f"{down_or_up}.{block}.attentions.{attn}.transformer_blocks.0",
        f"{compvis_block}.1.transformer_blocks.0",
        hidden,
    )


# UNet execution order. SD1.x: channels (320, 640, 1280, 1280), transformers in down blocks 0-2 (two each), the mid
# block, and up blocks 1-3 (three each). compvis numbering: input_blocks 1,2 | 4,5 | 7,8 (3, 6, 9 are downsamplers,
# 10, 11 the transformer-less bottom level); output_blocks 0-2 have no transformer.
SD15_SITES: tuple[Site, ...] = (
    _site("down_blocks", 0, 0, "input_blocks.1", 320),
    _site("down_blocks", 0, 1, "input_blocks.2", 320),
    _site("down_blocks", 1, 0, "input_blocks.4", 640),
    _site("down_blocks", 1, 1, "input_blocks.5", 640),
    _site("down_blocks", 2, 0, "input_blocks.7", 1280),
    _site("down_blocks", 2, 1, "input_blocks.8", 1280),
    Site("mid_block.attentions.0.transformer_blocks.0", "middle_block.1.transformer_blocks.0", 1280),
    _site("up_blocks", 1, 0, "output_blocks.3", 1280),
    _site("up_blocks", 1, 1, "output_blocks.4", 1280),
    _site("up_blocks", 1, 2, "output_blocks.5", 1280),
    _site("up_blocks", 2, 0, "output_blocks.6", 640),
    _site("up_blocks", 2, 1, "output_blocks.7", 640),
    _site("up_blocks", 2, 2, "output_blocks.8", 640),
    _site("up_blocks", 3, 0, "output_blocks.9", 320),
    _site("up_blocks", 3, 1, "output_blocks.10", 320),
    _site("up_blocks", 3, 2, "output_blocks.11", 320),
)


def site_for_compvis(path: str, sites: tuple[Site, ...] = SD15_SITES) -> Site:
    """The site whose compvis path is `path` (e.g. "input_blocks.1.1.transformer_blocks.0"); KeyError if none."""
    for site in sites:
        if site.compvis == path:
            return site
    raise KeyError(f"no FACT site at compvis path {path!r}")


def site_for_diffusers(path: str, sites: tuple[Site, ...] = SD15_SITES) -> Site:
    """The site whose diffusers path is `path`; KeyError if none."""
    for site in sites:
        if site.diffusers == path:
            return site
    raise KeyError(f"no FACT site at diffusers path {path!r}")
