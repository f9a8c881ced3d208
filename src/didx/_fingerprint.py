"""A digest of a frame's role columns, to recognise the fitted frame when ``with_vcov(data=df)`` reads a new
cluster column from it (see :class:`didx.inference.contract.ClusterCodes`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fingerprint:
    """A digest of some of the input frame's role columns (numeric ones), to recognise the fitted frame later."""

    columns: tuple[str, ...]
    digest: str

    @staticmethod
    def of(arrays: Mapping[str, np.ndarray]) -> Fingerprint:
        h = hashlib.sha1(usedforsecurity=False)
        used = []
        for name, a in arrays.items():
            arr = np.asarray(a)
            if arr.dtype.kind not in "biuf":
                continue  # object columns would cost a Python-level hash per row; the numeric ones suffice
            h.update(name.encode())
            h.update(np.ascontiguousarray(arr.astype(np.float64, copy=False)).data)
            used.append(name)
        return Fingerprint(tuple(used), h.hexdigest())
