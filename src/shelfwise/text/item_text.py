"""Composing an item's text from its catalog fields with a configurable template and truncation."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shelfwise.errors import ConfigError

FIELDS = ("title", "brand", "category", "description", "tags")
DEFAULT_TEMPLATE = "{title}. {brand}. {category}. {description}. {tags}"
_EMPTY_SEGMENT = re.compile(r"(\s*[.;,|:]\s*)(?=[.;,|:]|$)")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ItemTextTemplate:
    """How an item becomes text.

    Args:
        template: a format string over the fields title, brand, category, description and tags; empty
            fields vanish together with the punctuation after them.
        max_chars: the composed text is cut at this many characters (at a word boundary).
        max_description_chars: the description alone is cut first, so that a long description never
            pushes out the tags.
    """

    template: str = DEFAULT_TEMPLATE
    max_chars: int = 1000
    max_description_chars: int = 600

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.template) if name}
        unknown = sorted(names - set(FIELDS))
        if unknown:
            raise ConfigError(f"Item text template uses unknown field(s) {unknown}; valid fields are {FIELDS}.")
        if self.max_chars < 1 or self.max_description_chars < 0:
            raise ConfigError("max_chars must be >= 1 and max_description_chars >= 0.")

    def compose(self, item: dict) -> str:
        values = {name: _as_text(item.get(name)) for name in FIELDS}
        values["description"] = _cut(values["description"], self.max_description_chars)
        text = self.template.format(**values)
        text = _SPACE.sub(" ", text).strip()
        previous = None
        while previous != text:
            previous = text
            text = _EMPTY_SEGMENT.sub("", text).strip(" .;,|:")
        return _cut(text, self.max_chars)

    def compose_all(self, items: pd.DataFrame) -> list[str]:
        """One text per row of an item table (see `shelfwise.data.schema.ITEM_COLUMNS`)."""
        present = [name for name in FIELDS if name in items.columns]
        records = items[present].to_dict("records")
        return [self.compose(record) for record in records]


def _as_text(value: object) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value if str(v).strip())
    return str(value).strip()


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return head[:space] if space > limit // 2 else head
