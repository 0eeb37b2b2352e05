"""The file opener handed to rasterio: fsspec files with a private path namespace per open.

rasterio 1.4 keys its open-file bookkeeping by file object and registers openers per folder;
:class:`Container` gives each opened dataset its own virtual path, and :class:`File` compares by
identity, so that several datasets of one folder (or one file in two threads) do not break each
other. Used by :mod:`xasync.reader`.
"""

from __future__ import annotations

import uuid
from typing import Any

from rasterio.abc import FileContainer

__all__ = ["Container", "File"]


class File:
    """A file object with identity equality.

    rasterio 1.4 keys its open-file bookkeeping by the file object, and fsspec read-mode files
    of the same object compare equal: two open datasets of one URL would then collide.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> File:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


class Container(FileContainer):
    """The opener handed to rasterio: one private path namespace per opened dataset.

    rasterio 1.4 registers openers per (scheme, host, parent folder) and drops the registration
    when any dataset of that folder closes, so two datasets of one folder (several outputs of a
    request, or one file in two threads) break each other. Each open here gets the virtual path
    ``/xasync-<uuid>/<real path>``; the container maps it back to the real path on ``fs``.
    """

    def __init__(self, fs: Any, real: str) -> None:
        self._fs = fs
        self._real = real
        self.virtual = f"/xasync-{uuid.uuid4().hex}/{real.split('://', 1)[-1].lstrip('/')}"

    def _map(self, path: str) -> str:
        return self._real if path == self.virtual else path

    def open(self, path: str, mode: str = "rb", **kwds: Any) -> File:
        return File(self._fs.open(self._map(path), mode=mode, **kwds))

    def isfile(self, path: str) -> bool:
        return path == self.virtual

    def isdir(self, path: str) -> bool:
        return False

    def ls(self, path: str) -> list[str]:
        return []  # sidecar files (.aux.xml, .msk, .ovr) are never looked for

    def mtime(self, path: str) -> int:
        return 0

    def rm(self, path: str) -> None:
        raise PermissionError("read-only")

    def size(self, path: str) -> int:
        if path != self.virtual:
            raise FileNotFoundError(path)
        return int(self._fs.size(self._real))
