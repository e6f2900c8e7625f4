"""Errors shown to users as one sentence."""

from __future__ import annotations


def one_sentence(error: BaseException) -> str:
    """Return the first line of an error's message, ending with a full stop."""
    text = str(error).strip().splitlines()[0].strip() if str(error).strip() else ""
    text = text or f"{type(error).__name__} was raised"
    return text if text.endswith((".", "!", "?")) else text + "."
