"""What `client.functions` does without the network: packing code for a deploy.

A deploy sends either `code` (the source of one module) or `bundle` (a zip of a folder). The
SDK packs what it is given into that: a code string as is, a `.py` file, a folder (its
`__pycache__`, `.pyc` files and hidden entries left out) or a zip as they are. Symlinks are
refused rather than followed, so a deploy never carries a file from outside the folder.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

from roost.errors import ConfigurationError

Source = str | os.PathLike[str]


def deploy_source(source: Source | None, path: Source | None, entrypoint: str) -> dict[str, Any]:
    """The `code` or `bundle` of a deploy, and its `entrypoint`.

    `path` (or a `source` that is a path: an `os.PathLike`, or a one-line string naming an
    existing file or folder) is packed; any other string is the code of `main.py` (or of the
    module `entrypoint` names). A `.py` file is the module of its own name: `handler.py` with
    entrypoint "main" runs `handler:main`.
    """
    if (source is None) == (path is None):
        raise ConfigurationError(
            "give the function's code as source= or path=, one of them",
            details={"field": "source"},
        )
    where = path if path is not None else _as_path(source)
    if where is None:
        assert isinstance(source, str)
        return {"code": source, "entrypoint": entrypoint}
    folder = Path(where)
    if folder.is_dir():
        return {"bundle": _zip_folder(folder), "entrypoint": entrypoint}
    if folder.suffix == ".zip" and folder.is_file():
        return {"bundle": folder.read_bytes(), "entrypoint": entrypoint}
    if folder.suffix == ".py" and folder.is_file():
        if ":" not in entrypoint:
            entrypoint = f"{folder.stem}:{entrypoint}"
        return {"code": folder.read_text(), "entrypoint": entrypoint}
    raise ConfigurationError(
        f"{folder} is not a folder, a .py file or a .zip file", details={"field": "path"}
    )


def _as_path(source: Source | None) -> Source | None:
    if isinstance(source, os.PathLike):
        return source
    one_line = isinstance(source, str) and "\n" not in source and len(source) < 4096
    return source if one_line and os.path.exists(str(source)) else None


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not _skipped(d))
            for name in sorted(files):
                full = Path(root) / name
                if _skipped(name) or name.endswith(".pyc"):
                    continue
                if full.is_symlink():
                    raise ConfigurationError(
                        f"{full} is a symlink; deploy its target's content instead",
                        details={"field": "path"},
                    )
                archive.write(full, full.relative_to(folder).as_posix())
            for name in dirs:
                if (Path(root) / name).is_symlink():
                    raise ConfigurationError(
                        f"{Path(root) / name} is a symlink; deploy its target's content instead",
                        details={"field": "path"},
                    )
    return buffer.getvalue()


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"
