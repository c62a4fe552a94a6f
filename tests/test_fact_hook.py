"""FACT hooks on the real ldm UNetModel at SD1.5 shapes (8×8 latents, batch 2 to keep CPU time small).

What is asserted: hooks go on instances only (no module replaced, no class or forward patched) and are all gone after
detach, with bit-identical output; closed gates (or scale 0) leave the output bit-identical; with open gates the
conditional row gets the face path and the unconditional row exactly the "no face" path; an exception in the middle
of a forward leaves nothing behind after detach or after a sweep of a lost attachment; a LoRA applied the way the
host's Lora extension does it (class-level Linear.forward, in-place weights) and a class-level attention
optimisation compose with FACT.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from fact_hook_helpers import OPEN, bits, pairs, set_gates, snapshot, text_cond, tokens
from ldm.modules.attention import BasicTransformerBlock, CrossAttention
from ldm.modules.diffusionmodules.openaimodel import UNetModel

from facechain_ext.fact.attach import FaceTokens, RowRouter, attach, has_fact_hooks, remove_fact_hooks
from facechain_ext.fact.sites import SD15_SITES

FACE = FaceTokens(face=tokens(1), no_face=tokens(2))
COND, UNCOND = text_cond(10), text_cond(11)


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([700.0, 700.0])
    context = torch.stack([COND, UNCOND])  # row 0 conditional, row 1 unconditional (the host's [cond; uncond])
    return x, t, context


def run(unet, inputs):
    x, t, context = inputs
    with torch.no_grad():
        return unet(x, t, context=context)


@pytest.fixture(scope="module")
def plain(sd15_unet, inputs):
    return run(sd15_unet, inputs)


def class_attributes():
    return (UNetModel.forward, BasicTransformerBlock.forward, BasicTransformerBlock._forward, CrossAttention.forward,
            torch.nn.LayerNorm.forward, torch.nn.Linear.forward)


def test_hooks_sit_on_instances_and_detach_restores_exactly(sd15_unet, sd15_adapter, inputs, plain):
    before, classes = snapshot(sd15_unet), class_attributes()
    attachment = attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5)
    try:
        during = snapshot(sd15_unet)
        changed = sorted(name for name in before if during[name] != before[name])
        assert len(SD15_SITES) == 16
        assert changed == sorted(
            [""] + [f"{s.compvis}.{m}" for s in SD15_SITES for m in ("norm2", "attn2")]
        )  # the UNet (pre-hook) and norm2/attn2 of each of the 16 blocks, nothing else
        assert all(during[name][:4] == before[name][:4] for name in before)  # same objects, attributes, forwards
        assert class_attributes() == classes
        hooked = run(sd15_unet, inputs)
        assert attachment.calls == 1
        assert (hooked - plain).abs().max() > 1e-2
    finally:
        attachment.detach()
    attachment.detach()  # idempotent
    assert snapshot(sd15_unet) == before
    assert not has_fact_hooks(sd15_unet)
    assert class_attributes() == classes
    assert torch.equal(bits(run(sd15_unet, inputs)), bits(plain))


@contextlib.contextmanager
def closed_gates(adapter):
    set_gates(adapter, 0.0)
    try:
        yield adapter
    finally:
        set_gates(adapter, OPEN)


def test_closed_gates_or_zero_scale_leave_output_bit_identical(sd15_unet, sd15_adapter, inputs, plain):
    with closed_gates(sd15_adapter), attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
        assert torch.equal(bits(run(sd15_unet, inputs)), bits(plain))
    with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.0):
        assert torch.equal(bits(run(sd15_unet, inputs)), bits(plain))


def test_cond_row_gets_face_tokens_and_uncond_row_the_no_face_path(sd15_unet, sd15_adapter, inputs, plain):
    router = RowRouter()
    router.begin_step(COND[None], UNCOND[None])  # what on_cfg_denoiser reports for this step
    with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5, router=router):
        routed = run(sd15_unet, inputs)
    # references: every row through the adapter with the face tokens / with the no-face tokens
    with attach(sd15_unet, pairs(sd15_adapter), FaceTokens(FACE.face, FACE.face), scale=0.5):
        all_face = run(sd15_unet, inputs)
    with attach(sd15_unet, pairs(sd15_adapter), FaceTokens(FACE.no_face, FACE.no_face), scale=0.5):
        all_no_face = run(sd15_unet, inputs)
    assert torch.equal(routed[0], all_face[0])
    assert torch.equal(routed[1], all_no_face[1])
    # the two token sets really lead to different images, and both differ from the plain UNet
    assert (all_face[1] - all_no_face[1]).abs().max() > 1e-2
    assert (routed[0] - plain[0]).abs().max() > 1e-2 and (routed[1] - plain[1]).abs().max() > 1e-2


class Interrupted(BaseException):
    """Like the host's sd_samplers_common.InterruptedException (a BaseException)."""


def test_exception_mid_forward_then_detach_or_sweep_restores(sd15_unet, sd15_adapter, inputs, plain):
    before = snapshot(sd15_unet)

    def interrupt(module, args, output):
        raise Interrupted()

    # raise between the 7th and 8th adapted block: some adapters ran, a δ may be pending
    handle = sd15_unet.get_submodule("middle_block.2").register_forward_hook(interrupt)
    try:
        attachment = attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5)
        with pytest.raises(Interrupted):
            run(sd15_unet, inputs)
        attachment.detach()
        attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5)  # a job that crashed and lost its attachment
        with pytest.raises(Interrupted):
            run(sd15_unet, inputs)
        with pytest.raises(ValueError, match="still carries FACT hooks"):
            attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5)
    finally:
        handle.remove()
    assert remove_fact_hooks(sd15_unet) == 1 + 2 * 16
    assert remove_fact_hooks(sd15_unet) == 0
    assert snapshot(sd15_unet) == before
    assert torch.equal(bits(run(sd15_unet, inputs)), bits(plain))


# ---- the host's Lora extension, reduced (extensions-builtin/Lora/networks.py + lora_patches.py) -------------------
class LoraStandIn:
    """Names every module (`network_layer_name`, compvis path with '_'), patches `torch.nn.Linear.forward` at class
    level; the patched forward applies the loaded networks' deltas to the module's weight in place the first time
    (keeping a CPU backup) and then runs the original forward, like `network_apply_weights` + `originals.Linear_forward`."""

    def __init__(self, unet, deltas):
        self.unet, self.deltas, self.original = unet, deltas, torch.nn.Linear.forward
        self.layers = {}

    def __enter__(self):
        for name, module in self.unet.named_modules():
            module.network_layer_name = "diffusion_model_" + name.replace(".", "_")
            self.layers[module.network_layer_name] = module
        stand_in = self

        def network_linear_forward(module, input):
            stand_in.apply_weights(module)
            return stand_in.original(module, input)

        torch.nn.Linear.forward = network_linear_forward
        return self

    def apply_weights(self, module):
        name = getattr(module, "network_layer_name", None)
        if name is None or getattr(module, "network_current_names", ()) == ("face_lora",):
            return
        module.network_weights_backup = module.weight.to("cpu", copy=True)
        if name in self.deltas:
            with torch.no_grad():
                module.weight += self.deltas[name]
        module.network_current_names = ("face_lora",)

    def __exit__(self, *exc):
        torch.nn.Linear.forward = self.original
        for module in self.layers.values():
            backup = vars(module).pop("network_weights_backup", None)
            if backup is not None:
                with torch.no_grad():
                    module.weight.copy_(backup)
            for attr in ("network_layer_name", "network_current_names"):
                vars(module).pop(attr, None)


def lora_deltas(unet, rank=4):
    g = torch.Generator().manual_seed(7)
    deltas = {}
    for site in SD15_SITES:
        for proj in ("attn2.to_k", "attn2.to_v", "attn1.to_q"):
            layer = unet.get_submodule(f"{site.compvis}.{proj}")
            down = torch.randn(rank, layer.in_features, generator=g) / layer.in_features**0.5
            up = torch.randn(layer.out_features, rank, generator=g) * 0.5
            deltas["diffusion_model_" + f"{site.compvis}.{proj}".replace(".", "_")] = up @ down
    return deltas


def test_fact_composes_with_a_lora_applied_like_the_host(sd15_unet, sd15_adapter, inputs, plain):
    deltas = lora_deltas(sd15_unet)
    before = snapshot(sd15_unet)
    # expected: LoRA merged by hand (same in-place adds), FACT hooked
    layers = {"diffusion_model_" + n.replace(".", "_"): m for n, m in sd15_unet.named_modules()}
    backups = {name: layers[name].weight.clone() for name in deltas}
    with torch.no_grad():
        for name, delta in deltas.items():
            layers[name].weight += delta
    try:
        with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
            expected = run(sd15_unet, inputs)
    finally:
        with torch.no_grad():
            for name, weight in backups.items():
                layers[name].weight.copy_(weight)
    with LoraStandIn(sd15_unet, deltas):
        lora_only = run(sd15_unet, inputs)
        with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
            both = run(sd15_unet, inputs)
        with closed_gates(sd15_adapter), attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
            closed = run(sd15_unet, inputs)
        assert not any(hasattr(m, "network_layer_name") for m in sd15_adapter.modules())  # the LoRA never sees FACT
    assert torch.equal(bits(both), bits(expected))
    assert torch.equal(bits(closed), bits(lora_only))
    assert (lora_only - plain).abs().max() > 1e-2 and (both - lora_only).abs().max() > 1e-2
    assert snapshot(sd15_unet) == before
    assert torch.equal(bits(run(sd15_unet, inputs)), bits(plain))


def sdp_attention_forward(self, x, context=None, mask=None):
    """A class-level replacement of CrossAttention.forward, as modules/sd_hijack_optimizations.py installs
    (scaled_dot_product_attention)."""
    h = self.heads
    context = x if context is None else context
    q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
    b, _, inner = q.shape
    q, k, v = (t.view(b, -1, h, inner // h).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, inner)
    return self.to_out(out)


def test_fact_works_under_a_class_level_attention_optimisation(sd15_unet, sd15_adapter, inputs):
    with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
        vanilla_fact = run(sd15_unet, inputs)
    original = CrossAttention.forward
    CrossAttention.forward = sdp_attention_forward
    try:
        optimised_plain = run(sd15_unet, inputs)
        with attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
            optimised_fact = run(sd15_unet, inputs)
        with closed_gates(sd15_adapter), attach(sd15_unet, pairs(sd15_adapter), FACE, scale=0.5):
            optimised_closed = run(sd15_unet, inputs)
    finally:
        CrossAttention.forward = original
    assert torch.equal(bits(optimised_closed), bits(optimised_plain))
    torch.testing.assert_close(optimised_fact, vanilla_fact, rtol=1e-4, atol=1e-4)
    assert (optimised_fact - optimised_plain).abs().max() > 1e-2
