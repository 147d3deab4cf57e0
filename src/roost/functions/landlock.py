"""Landlock through its three system calls (the fallback isolation's file and network rules).

ctypes rather than a PyPI package: the kernel interface is three calls and two small structs,
stable since Linux 5.13 and versioned by an ABI number, while the Python bindings on PyPI are
pre-releases or new and barely used. What follows is tested on a real kernel by
tests/functions (fallback isolation).
"""

from __future__ import annotations

import ctypes
import os
from typing import Final

_SYS_CREATE_RULESET: Final = 444
_SYS_ADD_RULE: Final = 445
_SYS_RESTRICT_SELF: Final = 446
_CREATE_RULESET_VERSION: Final = 1 << 0
_RULE_PATH_BENEATH: Final = 1

EXECUTE: Final = 1 << 0
WRITE_FILE: Final = 1 << 1
READ_FILE: Final = 1 << 2
READ_DIR: Final = 1 << 3
TRUNCATE: Final = 1 << 14  # ABI 3
IOCTL_DEV: Final = 1 << 15  # ABI 5
_FS_BY_ABI: Final = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_FS_LATEST: Final = (1 << 16) - 1  # ABI 5 and later
_FILE_RIGHTS: Final = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ: Final = EXECUTE | READ_FILE | READ_DIR

NET_BIND_TCP: Final = 1 << 0
NET_CONNECT_TCP: Final = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET: Final = 1 << 0
SCOPE_SIGNAL: Final = 1 << 1

#: The oldest ABI the fallback accepts: 4 is the first that governs TCP (Linux 6.7), a
#: second wall beside seccomp's refusal of every socket.
MINIMUM_ABI: Final = 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def abi_version() -> int:
    """The kernel's Landlock ABI, 0 when Landlock is missing or disabled."""
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"landlock {what}: {os.strerror(errno)}")
    return result


def restrict(*, read: list[str], write: list[str]) -> int:
    """Confine this process (and all it starts) for good: it may read (and run) only below
    `read`, read and write only below `write`, connect to and bind no TCP port, reach no
    abstract Unix socket and signal no process outside its own domain. Needs no_new_privs
    set. Answers the ABI in force. (The fallback's seccomp filter refuses every socket too:
    this is the second wall.)"""
    abi = abi_version()
    if abi < MINIMUM_ABI:
        raise OSError(f"Landlock ABI {MINIMUM_ABI} or later is needed; the kernel has {abi}")
    handled_fs = _FS_BY_ABI.get(abi, _FS_LATEST)
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled_fs, NET_BIND_TCP | NET_CONNECT_TCP, scoped)
    size = ctypes.sizeof(attr) if abi >= 6 else 16
    ruleset = _check(
        _libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "create_ruleset",
    )
    try:
        for paths, rights in ((read, READ), (write, handled_fs)):
            for path in paths:
                _allow_path(ruleset, path, rights & handled_fs)
        _check(_libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0), "restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _allow_path(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # nothing there to allow
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS  # directory rights on a file are refused (EINVAL)
        rule = _PathBeneathAttr(rights, fd)
        _check(
            _libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0),
            f"add_rule {path}",
        )
    finally:
        os.close(fd)
