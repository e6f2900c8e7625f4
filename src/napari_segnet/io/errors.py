"""The one exception that reading an image raises, and how it words a library's error."""


class ImageReadError(ValueError):
    """A file cannot be read as an image; the message is one sentence for the user."""


def one_line(error: BaseException) -> str:
    """Return the error's message on one line, in parentheses (empty if it has none)."""
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f" ({text})" if text else ""
