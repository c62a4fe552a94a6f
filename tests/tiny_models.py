"""Tiny, randomly initialised SD1-shaped models for tests: no downloads, CPU-fast.

- diffusers: UNet2DConditionModel (32/64 channels, cross-attention width 32), AutoencoderKL (factor 8), CLIP text
  encoder + a CLIPTokenizer built from a small byte-level vocab written to a temp folder.
- host-like ldm: the REAL `ldm...openaimodel.UNetModel` (SD1 layout: spatial transformers, use_checkpoint=True as in
  the SD1 config) inside a small stand-in that follows LatentDiffusion's API, because `ldm.models.diffusion.ddpm`
  needs torchvision, which this environment lacks.
Both UNets share one geometry, so diffusers names map onto the ldm UNet's compvis names with the host's rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

CONTEXT_DIM = 32
RESOLUTION = 64  # pixels; latents are 8x8
# Plays the role of SD's 0.18215: brings this random VAE's latents to roughly unit variance.
VAE_SCALE = 4.0


def sd_alphas_cumprod(steps: int = 1000) -> torch.Tensor:
    """SD1's "scaled linear" schedule: betas = linspace(√0.00085, √0.012)²."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


def randomize_(module: nn.Module, seed: int, std: float = 0.05) -> nn.Module:
    """Overwrite every parameter with seeded noise.

    ldm zero-initialises output convs and transformer proj_out (as in training from scratch), which would block all
    gradients to attention LoRA; a "pretrained-like" random model needs non-zero weights everywhere.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("weight") and param.ndim == 1:  # norm scales stay near 1
                param.copy_(1.0 + std * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(std * torch.randn(param.shape, generator=generator))
    return module


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for raw bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def make_tokenizer(folder: Path):
    """A real CLIPTokenizer over a minimal vocab: every byte symbol, with and without `</w>`, plus a few merges."""
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    merges = ["p h", "ph o", "pho t", "o </w>", "f c", "fc s"]
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["ph", "pho", "phot", "o</w>", "fc", "fcs"]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)  # highest id: CLIP pools at argmax(input_ids)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def tiny_text_encoder(vocab_size: int, seed: int = 1):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=CONTEXT_DIM, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab_size - 2,
                            eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    return CLIPTextModel(config).eval()


def tiny_vae(seed: int = 2):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16),
                        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=RESOLUTION,
                        scaling_factor=VAE_SCALE).eval()
    # A trained SD VAE has a very narrow posterior (latents ≈ the mean); a random one would have std ≈ 1, i.e.
    # latents that are mostly sampling noise. Pin log-variance to -20 (std ≈ 5e-5) like the real thing.
    with torch.no_grad():
        vae.quant_conv.weight[4:] = 0.0
        vae.quant_conv.bias[4:] = -20.0
    return vae


def tiny_diffusers_unet(seed: int = 3):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CONTEXT_DIM,
                                attention_head_dim=4, norm_num_groups=32)
    return unet.eval()


def tiny_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type="epsilon")


def tiny_diffusers_model(folder: Path, *, seed: int = 3, is_sd1: bool = True):
    from facechain_ext.diffusion.diffusers_model import DiffusersModel

    tokenizer = make_tokenizer(folder / "tokenizer")
    return DiffusersModel(tiny_diffusers_unet(seed), tiny_vae(), tiny_text_encoder(len(tokenizer.get_vocab())),
                          tokenizer, tiny_scheduler(), checkpoint_name="tiny-diffusers", is_sd1=is_sd1)


# ldm UNetModel arguments of the tiny SD1-shaped UNet (the host's class; Forge's UNet takes the same ones).
TINY_UNET_CONFIG = dict(image_size=8, in_channels=4, model_channels=32, out_channels=4, num_res_blocks=2,
                        attention_resolutions=(1,), channel_mult=(1, 2), num_head_channels=8,
                        use_spatial_transformer=True, transformer_depth=1, context_dim=CONTEXT_DIM, legacy=False)


def tiny_ldm_unet(seed: int = 4, use_checkpoint: bool = True) -> nn.Module:
    """The host's UNet class in the same geometry as `tiny_diffusers_unet` (attention at the first level only)."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**TINY_UNET_CONFIG, use_checkpoint=use_checkpoint)
    return randomize_(unet, seed).eval()


def tiny_forge_sd(folder: Path, *, seed: int = 4, prediction_type: str = "epsilon"):
    """A Forge SD1 engine (tests/fakeforge, `backend` must be importable) with the tiny parts: its UNet carries the
    weights of `tiny_ldm_unet(seed)`, its VAE and text encoder are those of `TinyLatentDiffusion`."""
    from backend.loader import forge_loader

    tokenizer = make_tokenizer(folder / "tokenizer")
    scheduler = {"prediction_type": prediction_type, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                 "beta_end": 0.012, "num_train_timesteps": 1000}
    return forge_loader({**TINY_UNET_CONFIG, "use_checkpoint": False}, tiny_ldm_unet(seed).state_dict(), tiny_vae(),
                        tiny_text_encoder(len(tokenizer.get_vocab())), tokenizer, scheduler)


class _DiffusionWrapper(nn.Module):
    """ldm's DiffusionWrapper for conditioning_key='crossattn': `sd_model.model`, holding `diffusion_model`."""

    def __init__(self, diffusion_model: nn.Module) -> None:
        super().__init__()
        self.diffusion_model = diffusion_model

    def forward(self, x, t, c_crossattn=None):
        return self.diffusion_model(x, t, context=torch.cat(c_crossattn, 1))


class TinyLatentDiffusion(nn.Module):
    """Follows the LatentDiffusion methods/fields the host and our LdmModel use, with tiny real parts."""

    def __init__(self, folder: Path, *, seed: int = 4, is_sd1: bool = True, parameterization: str = "eps",
                 use_checkpoint: bool = True) -> None:
        super().__init__()
        self.model = _DiffusionWrapper(tiny_ldm_unet(seed, use_checkpoint))
        self.first_stage_model = tiny_vae()
        self.tokenizer = make_tokenizer(folder / "tokenizer")
        self.cond_stage_model = tiny_text_encoder(len(self.tokenizer.get_vocab()))
        self.register_buffer("alphas_cumprod", sd_alphas_cumprod())
        self.num_timesteps = 1000
        self.parameterization = parameterization
        self.scale_factor = VAE_SCALE
        self.is_sd1, self.is_sd2, self.is_sdxl = is_sd1, False, False

    @torch.no_grad()
    def encode_first_stage(self, x):
        from ldm.modules.distributions.distributions import DiagonalGaussianDistribution

        vae = self.first_stage_model
        return DiagonalGaussianDistribution(vae.quant_conv(vae.encoder(x)))

    def get_first_stage_encoding(self, encoder_posterior):
        return self.scale_factor * encoder_posterior.sample()

    def get_learned_conditioning(self, prompts):
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=77, truncation=True, return_tensors="pt")
        return self.cond_stage_model(tokens.input_ids)[0]

    def apply_model(self, x_noisy, t, cond, return_ids=False):
        if not isinstance(cond, dict):
            cond = {"c_crossattn": cond if isinstance(cond, list) else [cond]}
        return self.model(x_noisy, t, **cond)


def unet_fingerprint(unet: nn.Module) -> dict:
    """What "restored exactly" means: module objects per path, their attribute dicts, instance forwards, hooks,
    parameter objects and storage, requires_grad and grads, buffers, training flags."""
    return {
        "modules": {path: id(m) for path, m in unet.named_modules(remove_duplicate=False)},
        "attrs": {path: sorted(m.__dict__) for path, m in unet.named_modules()},
        "forwards": {path: m.__dict__.get("forward") for path, m in unet.named_modules()},
        "hooks": {path: [len(getattr(m, h)) for h in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")]
                  for path, m in unet.named_modules()},
        "params": {name: (id(p), p.data_ptr(), p.requires_grad, p.grad) for name, p in unet.named_parameters()},
        "buffers": {name: id(b) for name, b in unet.named_buffers()},
        "training": {path: m.training for path, m in unet.named_modules()},
        "class_forward_of_linear": nn.Linear.forward,
    }


def unet_values(unet: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in unet.state_dict().items()}


def assert_unet_restored(unet: nn.Module, before_fingerprint: dict, before_values: dict[str, torch.Tensor]) -> None:
    assert unet_fingerprint(unet) == before_fingerprint
    after = unet.state_dict()
    assert set(after) == set(before_values)
    for key, tensor in before_values.items():
        assert torch.equal(after[key], tensor), key  # bit-identical
    assert not hasattr(unet, "peft_config")
    leftovers = [p for p, m in unet.named_modules() if type(m).__module__.startswith("peft") or hasattr(m, "lora_A")]
    assert leftovers == []
