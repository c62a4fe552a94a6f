"""FACT in template jobs through the stand-in host: the accordion's FACT hook on the face passes that use it.

The real FACT loader on synthetic release files (tests/fact_helpers.py), the real ldm UNetModel at SD1.5 shapes as the
checkpoint's UNet, identities prepared from real photos. The stand-in sampler records, at the moment it samples each
pass, whether FACT's hook is on the UNet and whose face tokens it carries; with FACT hooked and no identity LoRA in
the prompt it paints the person FACT's tokens come from (so fusion and scores see the right person).

Asserted: a LoRA face and a FACT face make two passes per candidate, the hook is on the UNet during the FACT pass only
and off afterwards (the UNet as before: no hook, no attribute left); the LoRA pass's prompt has its tag and the FACT
pass's has none; infotext records each face's conditioning; "lora+fact" carries both and the FACT fields; missing
FACT files or a non-SD1 checkpoint refuse "fact" with 503 `fact_unavailable` before anything runs; "auto" resolves
through the accordion's `resolve_conditioning` (LoRA, else FACT when installed, else a comment saying why not).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fact_hook_helpers import FakeLatentDiffusion, snapshot
from modules import infotext_utils, processing, shared
from template_helpers import IDENTITIES, IdentityPainter, make_template_context, template_path

from facechain_ext.errors import FaceChainError
from facechain_ext.fact.attach import has_fact_hooks
from facechain_ext.fact.files import find_fact_files
from facechain_ext.fact.model import load_fact_model
from facechain_ext.imaging import load_image
from facechain_ext.templates.request import TemplateArgs
from facechain_ext.webui.template_runner import PassFields, prepare_template, run_template

NEWBIE = "newbie"  # p02's person, prepared without a LoRA (a freshly created identity)
LORA_OF = {"angelina": "angelina_v1", "p02": "p02_v1", NEWBIE: "p02_v1"}  # whose photos the stand-in paints
ENCODER = "ms1mv2_model_TransFace_S.pt"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, data_dir):
    from facechain_ext.prep import PrepOptions, prepare_photos

    context = make_template_context(tmp_path_factory.mktemp("templates_fact"), data_dir)
    folder, train, _, _ = IDENTITIES["p02"]
    photos = [(p, data_dir / "faces" / folder / p) for p in train]
    context.identities.create(NEWBIE, prepare_photos(photos, context.analyzer(), PrepOptions()))
    return context


@pytest.fixture(scope="module")
def fact_model(fact_release):
    return load_fact_model(find_fact_files(fact_release.models_dir))


class FactPainter(IdentityPainter):
    """IdentityPainter that also records FACT's state while each pass samples, and paints FACT's person."""

    def __init__(self, ctx, data_dir: Path, unet) -> None:
        super().__init__(ctx, data_dir)
        self.ctx, self.unet = ctx, unet
        self.seen: list[dict] = []

    def __call__(self, p, init_image, mask, seed, networks):
        runtime = vars(self.ctx).get("fact")
        job = runtime.job if runtime is not None else None
        hooked = has_fact_hooks(self.unet)
        self.seen.append({
            "hooked": hooked, "attached": runtime is not None and runtime.attached_to(self.unet),
            "identity": job.identity_dir.name if job is not None else None,
            "scale": job.scale if job is not None else None, "photos": list(job.used_photos) if job else [],
            "tokens": tuple(job.tokens.face.shape) if job is not None and job.tokens is not None else None,
            "loras": [name for kind, name, _ in networks if kind == "lora"], "prompt": p.all_prompts[0],
        })
        if hooked and job is not None and not self.seen[-1]["loras"]:
            networks = [("lora", LORA_OF[job.identity_dir.name], "1")]  # the model, FACT-conditioned, paints that person
        return super().__call__(p, init_image, mask, seed, networks)


@pytest.fixture
def host(fake_host, ctx, data_dir, sd15_unet, fact_model, fact_release):
    """SD1.5-shaped checkpoint loaded, FACT's files in the models folder (links we remove afterwards)."""
    fake_host.reset_host(None, ["--no-half"])  # a CPU webui computes only with --no-half
    painter = FactPainter(ctx, data_dir, sd15_unet)
    processing.fake_sampler = processing.FakeSampler([template_path(data_dir)], inpaint=painter)
    shared.sd_model = FakeLatentDiffusion(sd15_unet)
    folder = ctx.settings.models_dir / "fact"
    folder.mkdir(parents=True, exist_ok=True)
    links = [folder / path.name for path in (fact_release.encoder, fact_release.adapter)]
    for link, path in zip(links, (fact_release.encoder, fact_release.adapter), strict=True):
        link.symlink_to(path)
    ctx.fact.model = fact_model  # loaded once per module; the runtime reuses a model of the same files
    yield painter
    for link in links:
        if link.is_symlink():
            link.unlink()
    ctx.fact.end()
    processing.fake_sampler = None
    shared.sd_model = None


def template(data_dir):
    return load_image(template_path(data_dir))


def job_args(faces, **extra) -> TemplateArgs:
    return TemplateArgs(faces=faces, n=extra.pop("n", 1), seed=40, guidance={"pose": False, "canny": False}, **extra)


def test_a_lora_face_and_a_fact_face_hook_fact_for_its_pass_only(ctx, data_dir, host, sd15_unet):
    before = snapshot(sd15_unet)
    faces = [{"index": 0, "identity": "angelina", "conditioning": "fact"}, {"index": 1, "identity": "p02", "conditioning": "lora"}]
    prepared = prepare_template(ctx, template(data_dir), job_args(faces, n=2))
    outcome = run_template(ctx, prepared, PassFields(steps=12))

    seen = host.seen
    assert [s["hooked"] for s in seen] == [True, False, True, False]  # 2 candidates x (FACT pass, LoRA pass)
    for fact_pass in (seen[0], seen[2]):
        assert fact_pass["attached"] and fact_pass["identity"] == "angelina" and fact_pass["scale"] == 0.55
        assert fact_pass["loras"] == [] and "<lora:" not in fact_pass["prompt"]  # angelina HAS a LoRA: "fact" skips it
        assert len(fact_pass["photos"]) == 1 and fact_pass["tokens"] == (1, 16, 768)
    for lora_pass in (seen[1], seen[3]):
        assert lora_pass["identity"] is None and lora_pass["loras"] == ["p02_v1"] and "<lora:p02_v1:0.9>" in lora_pass["prompt"]
    assert not has_fact_hooks(sd15_unet) and snapshot(sd15_unet) == before  # off after the job: the UNet as it was
    assert ctx.fact.attachment is None and ctx.fact.job is None

    analyzer = ctx.analyzer()
    for candidate in outcome.ranked:  # the FACT face is the identity (the stand-in painted FACT's person)
        assert all(f.score is not None and f.score > analyzer.threshold for f in candidate.faces)
        params = infotext_utils.parse_generation_parameters(candidate.infotext)
        assert params["FaceChain template faces"] == "1=angelina fact fact=0.55; 2=p02 lora p02_v1 0.9"
        assert "FaceChain identity" not in params and "FaceChain conditioning" not in params  # not an accordion job
        assert "<lora:" not in params["Prompt"]  # the first pass's (FACT) prompt
    fact_notes = [c for c in outcome.run.comments if "FACT" in c]  # the pass's own FACT notes reach the job, once
    assert fact_notes == ["FaceChain FACT: no head mask: the face-parsing model is not installed, the background "
                          "around the face was kept"], outcome.run.comments


def test_lora_plus_fact_carries_the_tag_and_the_fact_fields(ctx, data_dir, host):
    faces = [{"index": 1, "identity": "p02", "conditioning": "lora+fact", "fact_scale": 0.7, "fact_photo_count": 2}]
    outcome = run_template(ctx, prepare_template(ctx, template(data_dir), job_args(faces)), PassFields(steps=12))
    (seen,) = host.seen
    assert seen["hooked"] and seen["identity"] == "p02" and seen["scale"] == 0.7
    assert len(seen["photos"]) == 2 and seen["tokens"] == (1, 32, 768) and seen["loras"] == ["p02_v1"]
    params = infotext_utils.parse_generation_parameters(outcome.ranked[0].infotext)
    assert params["FaceChain template faces"] == "2=p02 lora+fact p02_v1 0.9 fact=0.7 photos=2"


def test_missing_fact_files_or_a_non_sd1_checkpoint_refuse_fact_before_anything_runs(ctx, data_dir, host):
    faces = [{"index": 0, "identity": "angelina", "conditioning": "fact"}]
    (ctx.settings.models_dir / "fact" / ENCODER).unlink()
    with pytest.raises(FaceChainError) as err:
        prepare_template(ctx, template(data_dir), job_args(faces))
    assert err.value.code == "fact_unavailable" and err.value.http_status == 503
    message = err.value.message
    assert "faces[0].conditioning" in message and ENCODER in message and "download" in message.lower()
    assert "checkpoint" not in message  # the SD1.5 checkpoint is fine: only the real reason is named

    xl = FakeLatentDiffusion(shared.sd_model.model.diffusion_model, is_sd1=False, title="sd_xl_base")
    xl.is_sdxl = True
    shared.sd_model = xl
    with pytest.raises(FaceChainError) as err:
        prepare_template(ctx, template(data_dir), job_args([{**faces[0], "conditioning": "lora+fact"}]))
    assert err.value.code == "fact_unavailable" and ENCODER in err.value.message
    assert "sd_xl_base is SDXL" in err.value.message
    assert processing.fake_sampler.calls == [] and host.seen == [] and shared.state.history == []


def test_auto_resolves_like_the_accordion(ctx, data_dir, host, monkeypatch):
    import facechain_ext.portraits as portraits

    calls = []
    original = portraits.resolve_conditioning
    monkeypatch.setattr(portraits, "resolve_conditioning",
                        lambda mode, **kw: calls.append((mode, kw)) or original(mode, **kw))
    faces = [{"index": 0, "identity": "angelina"}, {"index": 1, "identity": NEWBIE}]  # conditioning "auto"
    run = prepare_template(ctx, template(data_dir), job_args(faces))
    assert calls == [("auto", {"has_lora": True, "fact_installed": True}), ("auto", {"has_lora": False, "fact_installed": True})]
    lora, fact = run.identities[0], run.identities[1]
    assert lora.uses_lora and not lora.uses_fact and lora.lora_name == "angelina_v1"
    assert fact.uses_fact and not fact.uses_lora and fact.plan.face_lora is None and fact.fact_scale == 0.55
    assert any("has no trained LoRA yet; using FACT" in c for c in run.comments)

    outcome = run_template(ctx, run, PassFields(steps=12))  # the auto-FACT face runs through the hook too
    assert [s["hooked"] for s in host.seen] == [False, True] and host.seen[1]["identity"] == NEWBIE
    params = infotext_utils.parse_generation_parameters(outcome.ranked[0].infotext)
    assert params["FaceChain template faces"] == "1=angelina lora angelina_v1 0.9; 2=newbie fact fact=0.55"

    xl = FakeLatentDiffusion(shared.sd_model.model.diffusion_model, is_sd1=False, title="sd_xl_base")
    xl.is_sdxl = True
    shared.sd_model = xl  # FACT's files are there but it cannot run: "auto" goes on without it, saying why
    run = prepare_template(ctx, template(data_dir), job_args(faces[1:]))
    assert not run.identities[1].uses_fact
    assert any("FACT cannot stand in for identity 'newbie'" in c and "sd_xl_base is SDXL" in c for c in run.comments)

    shared.sd_model = FakeLatentDiffusion(xl.model.diffusion_model)
    (ctx.settings.models_dir / "fact" / ENCODER).unlink()  # no FACT files: the comment names the missing one
    run = prepare_template(ctx, template(data_dir), job_args(faces[1:]))
    assert not run.identities[1].uses_fact and not run.identities[1].uses_lora
    assert any("FACT (train-free) cannot stand in" in c and ENCODER in c for c in run.comments)
    assert calls[-1] == ("auto", {"has_lora": False, "fact_installed": False})
