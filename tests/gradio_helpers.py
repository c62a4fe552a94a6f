"""Reading a built Blocks' events and choices the same way on gradio 3.41 (A1111) and 4.40 (Forge).

gradio 3 config dependencies have `trigger` and `targets` = [block id]; gradio 4 has `targets` = [[block id, trigger]]
(a Blocks `load` targets the Blocks itself). gradio 4 normalises Dropdown choices to (label, value) pairs and keeps
`fns` as a dict.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

GRADIO4 = int(gr.__version__.split(".")[0]) >= 4


def events(block: Any) -> list[dict[str, Any]]:
    """[{trigger, targets (ids), outputs (ids), js}] of every event of `block`."""
    found = []
    for dep in block.config["dependencies"]:
        if "trigger" in dep:
            pairs = [(target, dep["trigger"]) for target in dep["targets"]] or [(None, dep["trigger"])]
        else:
            pairs = [tuple(target) for target in dep["targets"]]
        for target, trigger in pairs:
            found.append({"trigger": trigger, "target": target, "outputs": list(dep["outputs"]), "js": dep.get("js")})
    return found


def events_of(block: Any, component: Any) -> list[tuple[str, Any]]:
    """(trigger, js) of the events whose target is `component`."""
    return [(e["trigger"], e["js"]) for e in events(block) if e["target"] == component._id]


def load_outputs(block: Any) -> list[list[int]]:
    """The output ids of every page-load event."""
    return [e["outputs"] for e in events(block) if e["trigger"] == "load"]


def choice_labels(component: Any) -> list[Any]:
    """What a Dropdown/Radio shows (gradio 4 stores (label, value) pairs)."""
    return [c[0] if isinstance(c, (tuple, list)) else c for c in component.choices]


def handler_functions(block: Any) -> list[Any]:
    fns = block.fns.values() if isinstance(block.fns, dict) else block.fns
    return [fn.fn for fn in fns]
