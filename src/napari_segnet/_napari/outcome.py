"""What a widget's worker function returns when it fails: one sentence. No Qt here.

Worker functions run in a thread and never raise (see :mod:`.worker`): they return their
result, or a :class:`Failed` that the widget shows in its status line and as an error
notification.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Failed:
    """What a worker function returns instead of raising: one sentence for the user.

    Attributes
    ----------
    message : str
        Shown in the widget's status line and as an error notification.
    """

    message: str
