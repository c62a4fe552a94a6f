"""select_best: the snapshot whose renders look most like the person wins; no faces -> last snapshot + a note."""

from __future__ import annotations

import torch

from facechain_ext.lora.selection import select_best
from facechain_ext.lora.snapshots import Snapshot


def snap(step: int, value: float) -> Snapshot:
    return Snapshot(step, {"m.lora_down.weight": torch.full((1, 2), value), "m.lora_up.weight": torch.ones(2, 1),
                           "m.alpha": torch.tensor(1.0)})


SNAPS = [snap(100, 1.0), snap(200, 2.0), snap(300, 3.0)]
QUALITY = {1.0: [0.30, 0.40], 2.0: [0.70, None], 3.0: [0.50, 0.55]}  # per snapshot: scores of its 2 renders


def render(state):
    value = float(state["m.lora_down.weight"][0, 0])
    return [("img", value, i) for i in range(2)]


def score(image):
    _, value, index = image
    return QUALITY[value][index]


def test_best_snapshot_wins_and_every_score_is_reported():
    result = select_best(SNAPS, render, score)
    assert result.chosen_steps == [200] and result.note is None
    assert torch.equal(result.state_dict["m.lora_down.weight"], SNAPS[1].state_dict["m.lora_down.weight"])
    assert [s.to_dict() for s in result.scores] == [
        {"step": 100, "scores": [0.30, 0.40], "mean": 0.35},
        {"step": 200, "scores": [0.70, None], "mean": 0.70},
        {"step": 300, "scores": [0.50, 0.55], "mean": 0.525},
    ]
    assert result.best_image == ("img", 2.0, 0)


def test_top_k_averages_the_best_snapshots():
    result = select_best(SNAPS, render, score, top_k=2)
    assert result.chosen_steps == [200, 300]
    delta = result.state_dict["m.lora_up.weight"] @ result.state_dict["m.lora_down.weight"]
    delta *= float(result.state_dict["m.alpha"]) / result.state_dict["m.lora_down.weight"].shape[0]
    torch.testing.assert_close(delta, torch.full((2, 2), 2.5))  # mean of the two deltas (2 and 3)


def test_no_face_anywhere_keeps_last_snapshot_and_says_so():
    result = select_best(SNAPS, render, lambda image: None)
    assert result.chosen_steps == [300] and "No validation image contained a face" in result.note
    assert torch.equal(result.state_dict["m.lora_down.weight"], SNAPS[-1].state_dict["m.lora_down.weight"])
    assert all(s.mean is None for s in result.scores) and result.to_dict()["note"] == result.note
