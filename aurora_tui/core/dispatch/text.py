"""Operator text, normalised the same way by every part of the command parser."""
from __future__ import annotations

import re
import unicodedata

__all__ = ["CONTROL", "MAX_INPUT_CHARS", "QUOTES", "clean", "words_of"]


MAX_INPUT_CHARS = 4000

QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'",
                        "\u2013": "-", "\u2014": "-"})
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """NFKC, straight quotes, control characters to spaces, lower case, collapsed whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(QUOTES)
    text = CONTROL.sub(" ", text)
    return " ".join(text.lower().split())


def words_of(text: str) -> list[str]:
    """Alphanumeric words; ``_ - . /`` and other punctuation separate words."""
    return re.findall(r"[a-z0-9]+", text.lower())
