"""What a napari-segnet model file is called and how loading one fails: constants and errors only.

Every module that reads or writes model files imports these from here, and this
module imports nothing of the package, so model files, exported models and their
identities never import one another in a circle.
"""

from __future__ import annotations

# The ``format`` that a model file's metadata (and an exported file's) records.
FORMAT = "napari-segnet/1"
# The first bytes of pickle protocol 2+ and of torch's zip checkpoints.
PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")


class ModelLoadError(ValueError):
    """A model file cannot be loaded; the message is one sentence for the user."""
