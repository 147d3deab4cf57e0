"""A function's code: one zip (a bundle), checked before it is kept and again when unpacked.

A code string becomes a bundle of one module; the SDK packs a file, a folder or a zip into
one. Whatever a client sends, only plain files and folders with plain relative names get
through, within `BundleLimits`: no symlinks or special files, no absolute or `..` names, no
NUL, backslash or control characters in names, no duplicate names, no encrypted entries, no
compression but stored and deflate, and at most `max_unpacked_bytes` once inflated (the sizes
an entry declares bound what it inflates to, and its CRC is checked, so a zip bomb is refused
at deploy). Every refusal is a 4xx naming the entry.

The entrypoint's module is parsed (never run: handlers never run in the server process) to
check that it defines the handler and to learn whether the handler is a generator, whose
items are streamed.
"""

from __future__ import annotations

import ast
import io
import os
import secrets
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import msgspec

from roost.errors import PayloadTooLargeError, ValidationError
from roost.wire.functions import HandlerKind

_MAX_NAME_BYTES = 1024
_MAX_SEGMENT_BYTES = 255
_MAX_PARSED_BYTES = 4 * 1024 * 1024  # the entry module; ast.parse of more is seconds of CPU
_CHUNK = 256 * 1024
_DEFAULT_MODULE = "main"


class BundleLimits(msgspec.Struct, frozen=True):
    max_bundle_bytes: int
    max_unpacked_bytes: int
    max_files: int


class Entrypoint(msgspec.Struct, frozen=True):
    """`function` (in main.py) or `module:function`, split."""

    module: str
    function: str

    @classmethod
    def parse(cls, text: str) -> Entrypoint:
        module, _, function = text.rpartition(":")
        return cls(module or _DEFAULT_MODULE, function)

    @property
    def qualified(self) -> str:
        return f"{self.module}:{self.function}"

    def module_files(self) -> tuple[str, str]:
        """Where the module may be in a bundle: `a/b.py` or `a/b/__init__.py`."""
        path = self.module.replace(".", "/")
        return f"{path}.py", f"{path}/__init__.py"


def code_bundle(code: str, entrypoint: Entrypoint) -> bytes:
    """A bundle holding `code` as the entrypoint's module."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(entrypoint.module_files()[0], code.encode())
    return buffer.getvalue()


def check_bundle(data: bytes, limits: BundleLimits) -> int:
    """Refuse a bundle that breaks a rule of this module (reading every entry through, so
    that a lying size or a bad CRC is found now); answer its size once unpacked."""
    if len(data) > limits.max_bundle_bytes:
        raise PayloadTooLargeError(
            f"the bundle is {len(data)} bytes; the limit is {limits.max_bundle_bytes}",
            details={"field": "bundle", "limit": limits.max_bundle_bytes},
        )
    total = 0
    with _open_zip(data) as archive:
        for info in _checked_entries(archive, limits):
            if not info.is_dir():
                total += _drain(archive, info)
    return total


def handler_kind(data: bytes, entrypoint: Entrypoint) -> HandlerKind:
    """Whether the entrypoint is a generator ("stream") or not ("unary"), read from its
    module's syntax tree. A module that does not bind the handler's name is refused; a
    handler bound by an import or an assignment is taken as unary (if it is a generator
    after all, a unary call answers the list of its items)."""
    source = _module_source(data, entrypoint)
    try:
        tree = ast.parse(source, filename=entrypoint.module_files()[0])
    except SyntaxError as exc:
        where = exc.filename or entrypoint.module_files()[0]
        raise ValidationError(
            f"{where}, line {exc.lineno or 0}: {exc.msg}",
            code="syntax_error",
            details={"field": "code", "file": where, "line": exc.lineno or 0},
        ) from None
    except (ValueError, RecursionError, MemoryError):
        raise ValidationError(
            f"{entrypoint.module_files()[0]} cannot be parsed (NUL bytes or nesting too deep)",
            code="syntax_error",
            details={"field": "code"},
        ) from None
    found = _binding(tree.body, entrypoint.function)
    if found is None:
        raise ValidationError(
            f"module {entrypoint.module} defines no {entrypoint.function} at its top level",
            details={"field": "entrypoint"},
        )
    if isinstance(found, ast.FunctionDef | ast.AsyncFunctionDef) and _yields(found):
        return "stream"
    return "unary"


def unpack(data: bytes, destination: Path, limits: BundleLimits) -> None:
    """Unpack a bundle into `destination` (which must not exist yet), read-only: files
    0444, folders 0555. It is written under a temporary name and renamed into place, so a
    reader never sees half of it; if another unpack got there first, its copy stays."""
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".unpacking-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    try:
        with _open_zip(data) as archive:
            for info in _checked_entries(archive, limits):
                _extract(archive, info, staging)
        _make_read_only(staging)
        try:
            staging.rename(destination)
        except OSError:
            if not destination.is_dir():
                raise
            remove_tree(staging)  # another unpack of the same version won the race
    except BaseException:
        remove_tree(staging)
        raise


def remove_tree(path: Path) -> None:
    """Remove an unpacked tree, read-only as it is (a no-op if it is not there)."""
    if not path.exists():
        return
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o700)  # writable again, to empty it
    shutil.rmtree(path, ignore_errors=True)


# -- the zip ------------------------------------------------------------------------------


def _open_zip(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as exc:
        raise ValidationError(
            f"the bundle is not a readable zip: {exc}", details={"field": "bundle"}
        ) from None


def _checked_entries(archive: zipfile.ZipFile, limits: BundleLimits) -> list[zipfile.ZipInfo]:
    entries = archive.infolist()
    if len(entries) > limits.max_files:
        raise ValidationError(
            f"the bundle has {len(entries)} entries; the limit is {limits.max_files}",
            details={"field": "bundle", "limit": limits.max_files},
        )
    files: set[str] = set()
    folders: set[str] = set()
    declared = 0
    for info in entries:
        name = _checked_name(info)
        _check_kind(info, name)
        path = PurePosixPath(name)
        # a folder entry's parents are folders too: a file `pkg` beside `pkg/sub/` would
        # pass, then fail to unpack (NotADirectoryError) on every run
        folders.update(str(parent) for parent in path.parents if str(parent) != ".")
        if info.is_dir():
            folders.add(str(path))
            continue
        if str(path) in files:
            raise _refused(name, "appears twice")
        files.add(str(path))
        declared += info.file_size
        if declared > limits.max_unpacked_bytes:
            raise PayloadTooLargeError(
                f"the bundle unpacks to more than {limits.max_unpacked_bytes} bytes",
                details={"field": "bundle", "limit": limits.max_unpacked_bytes},
            )
    if clash := sorted(files & folders):
        raise _refused(clash[0], "is both a file and a folder")
    return entries


def _checked_name(info: zipfile.ZipInfo) -> str:
    raw = info.orig_filename  # zipfile cuts `filename` at a NUL; the original keeps it
    shown = raw.replace("\x00", "\\0")[:200]
    if "\x00" in raw:
        raise _refused(shown, "has a NUL character in its name")
    name = info.filename
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _refused(shown, "has a backslash or a control character in its name")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise _refused(shown, f"has a name longer than {_MAX_NAME_BYTES} bytes")
    if name.startswith("/") or not name.strip("/"):
        raise _refused(shown, "is not a relative path")
    segments = name.rstrip("/").split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _refused(shown, "has an empty, '.' or '..' segment in its path")
        if len(segment.encode()) > _MAX_SEGMENT_BYTES:
            raise _refused(shown, f"has a path segment longer than {_MAX_SEGMENT_BYTES} bytes")
    return name


def _check_kind(info: zipfile.ZipInfo, name: str) -> None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        what = "a symlink" if kind == stat.S_IFLNK else "not a plain file or folder"
        raise _refused(name, f"is {what}")
    if info.flag_bits & 0x1:
        raise _refused(name, "is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _refused(name, "uses a compression other than stored or deflate")


def _drain(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Read an entry through (its CRC is checked at its end); answer its size."""
    size = 0
    try:
        with archive.open(info) as entry:
            while chunk := entry.read(_CHUNK):
                size += len(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise _refused(info.filename, f"cannot be read: {exc}") from None
    return size


def _extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    target = root / info.filename
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL | O_NOFOLLOW: nothing unpacked earlier can redirect this write
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as entry:
            while chunk := entry.read(_CHUNK):
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _refused(info.filename, f"cannot be read: {exc}") from None


def _make_read_only(root: Path) -> None:
    for folder, _, names in os.walk(root):
        for name in names:
            os.chmod(os.path.join(folder, name), 0o444)
    for folder, _, _ in sorted(os.walk(root), key=lambda item: -len(item[0])):
        os.chmod(folder, 0o555)  # noqa: S103 - the sandbox's own uid reads the code


def _module_source(data: bytes, entrypoint: Entrypoint) -> bytes:
    with _open_zip(data) as archive:
        names = set(archive.namelist())
        for candidate in entrypoint.module_files():
            if candidate in names:
                info = archive.getinfo(candidate)
                if info.file_size > _MAX_PARSED_BYTES:
                    raise ValidationError(
                        f"{candidate} is larger than {_MAX_PARSED_BYTES} bytes",
                        details={"field": "entrypoint"},
                    )
                return archive.read(info)
    first = entrypoint.module_files()[0]
    raise ValidationError(
        f"the bundle has no {first} for the entrypoint {entrypoint.qualified}",
        details={"field": "entrypoint"},
    )


def _binding(body: list[ast.stmt], name: str) -> ast.stmt | None:
    """The last top-level statement that binds `name` (in `if`/`try`/`with` blocks too)."""
    found: ast.stmt | None = None
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                found = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                found = node
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found = node
        else:
            for block in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(node, block, None)
                if isinstance(inner, list):
                    statements = [s for s in inner if isinstance(s, ast.stmt)]
                    for handler in inner:
                        if isinstance(handler, ast.ExceptHandler):
                            statements.extend(handler.body)
                    found = _binding(statements, name) or found
    return found


def _yields(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the function's own body yields (not a function or class nested in it)."""
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Yield | ast.YieldFrom):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False


def _refused(name: str, why: str) -> ValidationError:
    return ValidationError(
        f"bundle entry {name!r} {why}",
        code="bad_bundle",
        details={"field": "bundle", "entry": name},
    )
