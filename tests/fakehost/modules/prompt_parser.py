"""Stand-in for modules/prompt_parser.py (A1111 1.10): the conditioning containers and their per-step reconstruction.

Prompt parsing and scheduling syntax are not mimicked: tests build the containers directly (one schedule entry per
prompt unless a test wants prompt editing). `reconstruct_cond_batch` / `reconstruct_multicond_batch` pick each
prompt's entry for the step and stack them like the host (shorter conds padded by repeating their last vector).
"""

from __future__ import annotations

from collections import namedtuple

import torch

ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules: list[ScheduledPromptConditioning] = schedules
        self.weight: float = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape: tuple = shape  # the shape field is needed to send this object to DDIM/PLMS
        self.batch: list[list[ComposableScheduledPromptConditioning]] = batch


def _entry_for_step(schedules, current_step):
    for entry in schedules:
        if current_step <= entry.end_at_step:
            return entry
    return schedules[0]  # the host keeps target_index 0 when no entry matches


def reconstruct_cond_batch(c, current_step):
    """list (one per image) of schedules -> (batch, tokens, width) tensor for this step."""
    param = c[0][0].cond
    res = torch.zeros((len(c),) + param.shape, device=param.device, dtype=param.dtype)
    for i, cond_schedule in enumerate(c):
        res[i] = _entry_for_step(cond_schedule, current_step).cond
    return res


def stack_conds(tensors):
    token_count = max(x.shape[0] for x in tensors)
    for i in range(len(tensors)):
        if tensors[i].shape[0] != token_count:
            last_vector = tensors[i][-1:]
            tensors[i] = torch.vstack([tensors[i], last_vector.repeat([token_count - tensors[i].shape[0], 1])])
    return torch.stack(tensors)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step):
    """-> (conds_list, tensor): per image a list of (row index in tensor, weight); rows image by image (AND prompts)."""
    param = c.batch[0][0].schedules[0].cond
    tensors = []
    conds_list = []
    for composable_prompts in c.batch:
        conds_for_batch = []
        for composable_prompt in composable_prompts:
            conds_for_batch.append((len(tensors), composable_prompt.weight))
            tensors.append(_entry_for_step(composable_prompt.schedules, current_step).cond)
        conds_list.append(conds_for_batch)
    return conds_list, stack_conds(tensors).to(device=param.device, dtype=param.dtype)
