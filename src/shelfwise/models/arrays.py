"""A model folder's ``arrays.npz`` read without copying: `np.savez` stores each member uncompressed,
so each array can be memory-mapped where it lies in the file (copy-on-write: a model that changes
an array in place changes its own copy, never the file). Every worker process of a server then
shares one copy of the model's large arrays (the page cache) instead of holding its own."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

#: Arrays smaller than this are read into memory (a mapping costs a page and a file handle's work).
MAP_FROM_BYTES = 1 << 20


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz file `path`, by member name without ``.npy``: memory-mapped where the
    member is stored uncompressed, C-ordered and at least `MAP_FROM_BYTES`; read otherwise."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            mapped = _mapped(raw, path, info) if info.compress_type == zipfile.ZIP_STORED else None
            if mapped is None:
                with archive.open(info) as member:
                    mapped = np.lib.format.read_array(member, allow_pickle=False)
            out[name] = mapped
    return out


def _mapped(raw, path: Path, info: zipfile.ZipInfo) -> np.ndarray | None:
    """The member `info` as a copy-on-write map of `path`, or None where it cannot be mapped."""
    raw.seek(info.header_offset)
    local = raw.read(30)  # the local file header: its name and extra field lengths are at 26 and 28
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        return None
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    raw.seek(start)
    version = np.lib.format.read_magic(raw)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
    else:
        return None
    if fortran or dtype.hasobject or int(np.prod(shape)) * dtype.itemsize < MAP_FROM_BYTES:
        return None
    return np.memmap(path, dtype=dtype, mode="c", offset=raw.tell(), shape=shape, order="C").view(np.ndarray)
