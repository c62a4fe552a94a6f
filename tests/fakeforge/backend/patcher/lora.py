"""Forge's LoRA path: key map (`backend/patcher/lora.py` → `packages_3rdparty/comfyui_lora_collection/lora.py`),
file reading (`load_lora`), merging (`merge_lora_to_weight`) and the per-model `LoraLoader`.

Re-implemented from Forge's source (main branch) for the plain kohya LoRA FaceChain writes:
- `model_lora_keys_unet(model)`: for every state-dict key `diffusion_model.<path>.weight` of the KModel, the names
  `lora_unet_<path with "." → "_">` and `diffusion_model.<path>` map to that key (other keys map to themselves).
  Forge also maps diffusers module names through `utils.unet_to_diffusers(config)`: not mimicked here.
- `load_lora(lora, to_load)`: for each name `x` of the key map, `x.alpha`, then the first present of `x.lora_up.weight`
  (kohya: B = `x.lora_down.weight`, optional `x.lora_mid.weight`), `x_lora.up.weight`, `x.lora_B.weight`,
  `x.lora.up.weight`, `x.lora_linear_layer.up.weight` gives the patch `("lora", (up, down, alpha, mid, dora_scale))`
  for the mapped parameter key; returns (patches, the file's keys that were not used). LoHa/LoKr/GLoRA/diff/set
  branches are not mimicked.
- `merge_lora_to_weight`: "lora" patches only, `W += strength · (alpha / rank) · (up.flatten(1) @ down.flatten(1))`
  reshaped to W, computed in float32 (alpha = 1 without `.alpha`; rank = down's first dimension).
- `LoraLoader.refresh(lora_patches)`: no-op when the list of LoRA identifiers is unchanged; otherwise puts back every
  backed-up weight, then merges the current patches into new `Parameter`s (backing up the originals). Everything runs
  under `torch.inference_mode()`, as in Forge, so merged weights are inference tensors.
Sd-forge-lora (`extensions-builtin/sd_forge_lora/networks.py` `load_lora_for_models`) calls these on
`forge_objects.unet.model` and prints a mismatch when more than 12 keys are left unmatched.
"""

from __future__ import annotations

import torch

from backend import utils

_UP_DOWN = (
    ("{}.lora_up.weight", "{}.lora_down.weight", "{}.lora_mid.weight"),
    ("{}_lora.up.weight", "{}_lora.down.weight", None),
    ("{}.lora_B.weight", "{}.lora_A.weight", None),
    ("{}.lora.up.weight", "{}.lora.down.weight", None),
    ("{}.lora_linear_layer.up.weight", "{}.lora_linear_layer.down.weight", None),
)


def model_lora_keys_unet(model, key_map=None) -> dict:
    key_map = {} if key_map is None else key_map
    for k in model.state_dict().keys():
        if k.startswith("diffusion_model."):
            if k.endswith(".weight"):
                path = k[len("diffusion_model."):-len(".weight")]
                key_map[f"lora_unet_{path.replace('.', '_')}"] = k
                key_map[k[:-len(".weight")]] = k
            else:
                key_map[k] = k
    return key_map


def load_lora(lora: dict, to_load: dict) -> tuple[dict, dict]:
    patch_dict, loaded_keys = {}, set()
    for x in to_load:
        alpha_name = f"{x}.alpha"
        alpha = None
        if alpha_name in lora:
            alpha = lora[alpha_name].item()
            loaded_keys.add(alpha_name)
        dora_name = f"{x}.dora_scale"
        dora_scale = lora.get(dora_name)
        if dora_scale is not None:
            loaded_keys.add(dora_name)
        for up_t, down_t, mid_t in _UP_DOWN:
            up_name = up_t.format(x)
            if up_name not in lora:
                continue
            down_name = down_t.format(x)
            mid = None
            if mid_t is not None and mid_t.format(x) in lora:
                mid = lora[mid_t.format(x)]
                loaded_keys.add(mid_t.format(x))
            patch_dict[to_load[x]] = ("lora", (lora[up_name], lora[down_name], alpha, mid, dora_scale))
            loaded_keys.update((up_name, down_name))
            break
    return patch_dict, {k: v for k, v in lora.items() if k not in loaded_keys}


@torch.inference_mode()
def merge_lora_to_weight(patches, weight, key="online_lora", computation_dtype=torch.float32):
    backup_dtype = None if weight.dtype == computation_dtype else weight.dtype
    weight = weight.clone() if backup_dtype is None else weight.to(dtype=computation_dtype)
    for strength, value, strength_model, _offset, _function in patches:
        if strength_model != 1.0:
            weight *= strength_model
        patch_type, v = value
        if patch_type != "lora":
            raise NotImplementedError(f"the Forge stand-in merges 'lora' patches only, not {patch_type!r} ({key})")
        up = v[0].to(weight.device, computation_dtype)
        down = v[1].to(weight.device, computation_dtype)
        alpha = v[2] / down.shape[0] if v[2] is not None else 1.0
        diff = torch.mm(up.flatten(start_dim=1), down.flatten(start_dim=1)).reshape(weight.shape)
        weight += ((strength * alpha) * diff).type(weight.dtype)
    return weight if backup_dtype is None else weight.to(dtype=backup_dtype)


class LoraLoader:
    def __init__(self, model) -> None:
        self.model = model
        self.backup: dict = {}
        self.loaded_hash = str([])

    @torch.inference_mode()
    def refresh(self, lora_patches: dict, offload_device=torch.device("cpu"), force_refresh: bool = False) -> None:
        hashes = str(list(lora_patches.keys()))
        if hashes == self.loaded_hash and not force_refresh:
            return
        merged: dict = {}
        for patches in lora_patches.values():
            for key, current in patches.items():
                merged[key] = merged.get(key, []) + current
        for key, weight in self.backup.items():
            utils.set_attr_raw(self.model, key, weight if isinstance(weight, torch.nn.Parameter)
                               else torch.nn.Parameter(weight, requires_grad=False))
        self.backup = {}
        for key, current in merged.items():
            parent, _, weight = utils.get_attr_with_parent(self.model, key)
            if not isinstance(weight, torch.nn.Parameter):
                raise ValueError(f"Wrong LoRA Key: {key}")
            self.backup[key] = weight.to(device=offload_device)
            new = merge_lora_to_weight(current, weight, key, computation_dtype=torch.float32)
            utils.set_attr_raw(self.model, key, torch.nn.Parameter(new, requires_grad=False))
        self.loaded_hash = hashes
