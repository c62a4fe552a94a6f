"""The one validator for every user-chosen or client-supplied name: identities, LoRAs, styles, jobs, models.

Names become file and folder names and prompt tokens (`<lora:NAME:w>`), so they are checked with `fullmatch`:
`re.match(r"^...$")` would accept a trailing newline (`$` matches before a final "\\n") and write it to disk.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FaceChainError

# identity and LoRA names: file stems and prompt tokens
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_RULE = "1-64 letters, digits, '_' or '-' (no spaces, dots or newlines)"
# style ids (file stems of the style library; lowercase so that ids are the same on every file system)
STYLE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
STYLE_ID_RULE = "1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
# any LoRA the host's Lora extension knows, as written in `<lora:NAME:w>`: the host's extra-network syntax
# (modules/extra_networks.py, `<(\w+):([^>]+)>`, arguments split on ":") allows neither ">" nor ":" in a name
HOST_LORA = re.compile(r"[^<>:\r\n\t]{1,255}")
HOST_LORA_RULE = "a LoRA name as the Lora tab shows it: no '<', '>', ':', tabs or line breaks"
# job ids made by jobs.JobQueue (uuid4 hex, 12 digits)
JOB_ID = re.compile(r"[0-9a-f]{12}")
JOB_ID_RULE = "12 lowercase hexadecimal digits, as returned when the job was submitted"


def is_valid(value: object, pattern: re.Pattern[str] = NAME) -> bool:
    """Whether `value` is a string matching `pattern` in full."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def check_name(value: object, what: str, *, pattern: re.Pattern[str] = NAME, rule: str = NAME_RULE,
               **context: Any) -> str:
    """`value` if it is a valid name, else FaceChainError `invalid_name` (422) naming `what` and the rule."""
    if not is_valid(value, pattern):
        raise FaceChainError("invalid_name", f"Invalid {what} {value!r}: use {rule}.", name=str(value), what=what,
                             **context)
    return str(value)
