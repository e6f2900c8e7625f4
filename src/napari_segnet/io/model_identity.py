"""Which model made a result: the small record every output carries, and how it is written.

A :class:`ModelIdentity` names a model (``nuclei``), its version (``2``; None for a
model without one) and a SHA-256 of its weights. Outputs record it so that a result can
be traced to the exact weights that made it and repeated with ``--model nuclei@2``:
measurement CSVs as constant columns, label images in their metadata, outlines as
object properties. This module has no torch: the writers and readers of ``io`` use it;
:func:`napari_segnet.models.model_identity` makes identities from model files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The keys of :meth:`ModelIdentity.as_metadata`, also the key of a layer's metadata and of
# our attributes in an OME-Zarr group.
METADATA_KEY = "model"
# Namespace of the OME MapAnnotation that carries the identity in OME-TIFF labels.
OME_NAMESPACE = "napari-segnet/model"
# Our key in an OME-Zarr group's attributes, beside NGFF's ``multiscales`` and ``image-label``.
ZARR_KEY = "napari-segnet"
# Hex digits of the hash where space matters (a CSV column repeated on every row).
SHORT_HASH = 16
_REFERENCE = re.compile(r"^(?P<name>.+)@(?P<version>\d+)$")
_HEX = re.compile(r"^[0-9a-f]{16,64}$")


def split_reference(reference: str) -> tuple[str, int | None]:
    """``"nuclei@2"`` → ``("nuclei", 2)``; ``"nuclei"`` → ``("nuclei", None)``."""
    match = _REFERENCE.match(str(reference))
    return (match["name"], int(match["version"])) if match else (str(reference), None)


@dataclass(frozen=True)
class ModelIdentity:
    """A model's name, version and weights hash, as recorded in every output.

    Attributes
    ----------
    name : str
        ``nuclei`` for a bundled model; for a model file, the name in its
        config (or the file's stem).
    version : int or None
        The bundled version (``nuclei@2``), or the version a model file's
        provenance records; None when there is none.
    sha256 : str
        SHA-256 (hex) of the weights; see
        :func:`napari_segnet.models.model_identity` for what is hashed.

    """

    name: str
    version: int | None
    sha256: str

    @property
    def reference(self) -> str:
        """How to ask for this model again: ``nuclei@2``, or the bare name without a version."""
        return self.name if self.version is None else f"{self.name}@{self.version}"

    @property
    def short_sha256(self) -> str:
        """The first 16 hex digits of the hash (64 bits: still unique in practice)."""
        return self.sha256[:SHORT_HASH]

    def as_metadata(self) -> dict[str, Any]:
        """Return the identity as plain JSON-ready values.

        Keys: ``model`` (the reference, ``nuclei@2``), ``model_name``,
        ``model_version`` (absent without a version) and ``model_sha256``.
        """
        values: dict[str, Any] = {"model": self.reference, "model_name": self.name}
        if self.version is not None:
            values["model_version"] = self.version
        values["model_sha256"] = self.sha256
        return values

    def as_text(self, separator: str = ": ") -> str:
        """Return ``key: value`` lines of :meth:`as_metadata` (ImageJ ROI properties)."""
        return "\n".join(f"{key}{separator}{value}" for key, value in self.as_metadata().items())

    def describe(self) -> str:
        """Return one sentence for people: ``model nuclei@2 (weights SHA-256 0123…)``."""
        return f"model {self.reference} (weights SHA-256 {self.sha256})"

    @classmethod
    def from_metadata(cls, values: Any) -> ModelIdentity | None:
        """Read an identity back from :meth:`as_metadata`'s keys; None if there is none.

        Accepts the identity itself, a mapping with ``model_sha256`` and either
        ``model_name`` (and ``model_version``) or ``model`` (``nuclei@2``), or
        ``key: value`` text as :meth:`as_text` writes it. Values may be text,
        as ImageJ and OME metadata return them.
        """
        if isinstance(values, ModelIdentity):
            return values
        if isinstance(values, str):
            values = parse_text(values)
        if not isinstance(values, Mapping):
            return None
        digest = str(values.get("model_sha256") or "").strip().lower()
        if not _HEX.match(digest):
            return None
        name = values.get("model_name")
        version = values.get("model_version")
        reference = str(values.get("model") or "").strip()
        if not name and reference:
            name, version = split_reference(reference)
        if not name:
            return None
        try:
            version = None if version in (None, "") else int(version)
        except (TypeError, ValueError):
            version = None
        return cls(str(name), version, digest)


def parse_text(text: str, separators: str = ":=") -> dict[str, str]:
    """Read ``key: value`` (or ``key=value``) lines whose key starts with ``model``."""
    values = {}
    for line in text.splitlines():
        cut = min((i for i in (line.find(s) for s in separators) if i > 0), default=-1)
        if cut > 0:
            key = line[:cut].strip()
            if key.startswith(METADATA_KEY):
                values[key] = line[cut + 1 :].strip()
    return values


def csv_columns(identity: ModelIdentity | None) -> dict[str, str]:
    """Return the constant columns of a measurement table of this model (none without one).

    ``model`` (``nuclei@2``) and ``model_sha256`` (its first 16 hex digits).
    """
    # Constant columns, rather than '#' comment lines above the header or a file beside the
    # CSV: pandas, R and Excel read any CSV's first line as the column names and break on
    # comment lines unless told, a sidecar file gets lost, and a column stays with every row
    # when tables of several runs or models are filtered, merged or stacked.
    if identity is None:
        return {}
    return {"model": identity.reference, "model_sha256": identity.short_sha256}


def with_model_columns(table, identity: ModelIdentity | None):
    """Return ``table`` (a DataFrame) with :func:`csv_columns` appended; itself without one."""
    columns = csv_columns(identity)
    if not columns:
        return table
    table = table.copy()
    for key, value in columns.items():
        table[key] = value
    return table
