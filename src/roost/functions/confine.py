"""What a new worker does to itself before it runs anything of a user's (see sandbox.py for the
walls built around it from outside).

In order, while still trusted: resource limits, the Landlock rules (fallback isolation, built
while root can still open every path it names), a dedicated uid, no new privileges, and last a
seccomp filter. Every step can only take rights away; none of it can be undone by the code
that runs afterwards.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Final

import pyseccomp as seccomp

from roost.functions import landlock
from roost.functions.protocol import Setup

_PR_SET_PDEATHSIG: Final = 1
_PR_SET_NO_NEW_PRIVS: Final = 38
_PR_SET_CHILD_SUBREAPER: Final = 36
_TIOCSTI: Final = 0x5412
_NAMESPACE_FLAGS: Final = (
    0x10000000,  # CLONE_NEWUSER
    0x00020000,  # CLONE_NEWNS
    0x40000000,  # CLONE_NEWNET
    0x20000000,  # CLONE_NEWPID
    0x08000000,  # CLONE_NEWIPC
    0x04000000,  # CLONE_NEWUTS
    0x02000000,  # CLONE_NEWCGROUP
)

#: Calls no function needs and sandbox escapes like: other processes' memory, mounts and
#: namespaces, the kernel keyring, BPF and perf, io_uring (whose operations seccomp never
#: sees), leaving the process group the pool kills, file handles that bypass paths; System V
#: and POSIX IPC (objects that outlive the worker, in the host's IPC namespace under the
#: fallback) and memory files (tmpfs memory that neither RLIMIT_AS nor any tmp bound counts).
DENIED_SYSCALLS: Final = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "move_mount", "open_tree", "fsopen", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "setsid", "setpgid", "open_by_handle_at", "name_to_handle_at", "fanotify_init",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "iopl", "ioperm", "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "vhangup", "personality",
    "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "memfd_create", "memfd_secret",
)  # fmt: skip

_libc = ctypes.CDLL(None, use_errno=True)


def confine(setup: Setup) -> str:
    """Confine this process as `setup` says; answers the isolation it now has, in words."""
    _limit_resources(setup)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphans of the user's code stay visible to us
    parts = ["bubblewrap"] if setup.allow_unix_sockets else []
    switching = setup.uid is not None and os.geteuid() == 0
    if switching:
        _reach_private_paths()
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    if setup.landlock_read or setup.landlock_write:
        landlock.restrict(read=setup.landlock_read, write=setup.landlock_write)
        parts.append("landlock")
    if switching and setup.uid is not None:
        os.setgroups([])
        os.setresgid(setup.uid, setup.uid, setup.uid)
        os.setresuid(setup.uid, setup.uid, setup.uid)
    parent = os.getppid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
    if os.getppid() != parent:
        os._exit(1)  # the pool went away in between
    _load_seccomp(allow_unix=setup.allow_unix_sockets)
    parts.append("seccomp")
    if switching:
        parts.append("setuid")
    return "+".join(parts)


def address_space_in_use() -> int:
    """Bytes of address space this process holds (what RLIMIT_AS counts)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[0]) * resource.getpagesize()


def _limit_resources(setup: Setup) -> None:
    limits = {
        resource.RLIMIT_NOFILE: setup.max_open_files,
        resource.RLIMIT_FSIZE: setup.max_file_bytes,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_CPU: setup.cpu_seconds,
    }
    if setup.max_processes:
        limits[resource.RLIMIT_NPROC] = setup.max_processes
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def _reach_private_paths() -> None:
    """Let the import system reach its folders after the switch to an unprivileged uid.

    An interpreter installed under a private folder (pyenv in /root, mode 0700) is out of an
    unprivileged uid's reach. Each such `sys.path` entry is opened now, while root, and
    replaced by its /proc/self/fd link: the kernel follows the link without checking the
    folders above it, and Landlock still limits what lies below to what it allows.
    """
    moved: dict[str, str] = {}
    for index, entry in enumerate(sys.path):
        if entry and os.path.isdir(entry) and not _world_reachable(Path(entry)):
            fd = os.open(entry, os.O_PATH | os.O_DIRECTORY)  # kept open: the link needs it
            moved[entry.rstrip("/") + "/"] = sys.path[index] = f"/proc/self/fd/{fd}/"
    for module in list(sys.modules.values()):  # packages already imported find their
        search = getattr(module, "__path__", None)  # submodules through __path__
        if isinstance(search, list):
            for index, folder in enumerate(search):
                for old, new in moved.items():
                    if isinstance(folder, str) and folder.startswith(old):
                        search[index] = new + folder[len(old) :]
    sys.path_importer_cache.clear()


def _world_reachable(path: Path) -> bool:
    return all(os.stat(parent).st_mode & stat.S_IXOTH for parent in path.resolve().parents)


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")


def _load_seccomp(*, allow_unix: bool) -> None:
    """Deny the calls above, and every socket but Unix ones under bubblewrap (its mount and
    network namespaces hold no other way out than the API relay's socket). The fallback may
    open no socket at all: a Unix socket could reach any local server's socket file, which
    Landlock does not govern, and a TCP one any host on a port Landlock allows; it gets its
    connections to the API on its door (relay.py). socketpair stays: it reaches nothing."""
    denied = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        _add(rules, denied, name)
    _add(rules, seccomp.ERRNO(errno.ENOSYS), "clone3")  # its flags are out of sight; libc
    for flag in _NAMESPACE_FLAGS:  # falls back on clone, whose flags are checked here
        _add(rules, denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    _add(rules, denied, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, _TIOCSTI))
    if allow_unix:
        _add(rules, denied, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    else:
        _add(rules, denied, "socket")
        # a datagram pair may still send to any socket file (sendto names an address)
        dgram = int(socket.SOCK_DGRAM)
        _add(rules, denied, "socketpair", seccomp.Arg(1, seccomp.MASKED_EQ, 0xF, dgram))
    rules.load()


def _add(rules: seccomp.SyscallFilter, action: int, name: str, *args: seccomp.Arg) -> None:
    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    if number >= 0:  # else a call too new for this libseccomp, or not on this architecture
        rules.add_rule(action, number, *args)
