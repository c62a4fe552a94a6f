"""The class phrase of the caption `<trigger>, <phrase>`, from gender and age voted over the accepted photos.

FaceChain summed its attribute classifier's scores over all photos; we take the majority gender and the median
age. A backend without gender (dlib) gives the neutral "a person", and the report says so.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ..faces.types import Face


@dataclass(frozen=True)
class Phrase:
    text: str
    source: str  # "user" | "attributes" | "neutral"
    note: str | None = None


def choose_phrase(faces: Sequence[Face], child_age: float, mature_age: float, override: str | None = None) -> Phrase:
    if override is not None and override.strip():
        return Phrase(override.strip(), "user")
    genders = [face.gender for face in faces if face.gender in ("male", "female")]
    males, females = genders.count("male"), genders.count("female")
    if not genders:
        return Phrase(
            "a person",
            "neutral",
            "the face backend gives no gender or age, so the neutral phrase 'a person' was used; set a phrase to override",
        )
    if males == females:
        return Phrase(
            "a person",
            "neutral",
            f"gender votes are tied ({males} male, {females} female), so the neutral phrase 'a person' was used",
        )
    male = males > females
    ages = [float(face.age) for face in faces if face.age is not None]
    age = statistics.median(ages) if ages else None
    if age is not None and age < child_age:
        text = "a boy" if male else "a girl"
    elif age is not None and age >= mature_age:
        text = "a mature man" if male else "a mature woman"
    else:
        text = "a handsome man" if male else "a beautiful woman"
    age_note = "" if age is None else f", median age {age:.0f}"
    return Phrase(text, "attributes", f"{males} male / {females} female votes{age_note}")


def caption(trigger: str, phrase: str) -> str:
    return f"{trigger}, {phrase}" if trigger else phrase
