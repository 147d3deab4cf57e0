"""What the pool and a worker process say to each other over their pipes.

Each message is one frame: a 4-byte big-endian length, then the message as MessagePack. The
pool writes `Setup` once, then one `Job` at a time; the worker answers `Ready` once, and for
each job any number of `Item` and `Log`, exactly one `Finished` or `Failed`, then `Idle`.

`Job.entrypoint` is `function` (in the module `main`, i.e. `main.py` in `code_dir`) or
`module:function` (`handlers.orders:process`). The handler is called as
`function(params, user_data)`; it may be a plain or `async def`, or a plain or async generator
(whose values are the items: streamed as `Item` when `Job.stream`, else collected into a list
that is the result).
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

FRAME_HEADER: Final = 4


class Job(msgspec.Struct, tag="job", frozen=True):
    """One call of a function version, as the service hands it to the pool."""

    execution_id: str
    tenant: str
    function: str
    version: int
    code_dir: str  # the version's folder on the server; the worker sees a read-only copy
    entrypoint: str
    params: Any
    user_data: dict[str, Any]
    env: dict[str, str]  # ROOST_API_URL, ROOST_TOKEN, ROOST_*, the declared secrets
    timeout: float  # seconds of wall time, import of the code included
    memory_mb: int  # address space on top of what the idle worker already holds
    stream: bool  # a generator's values come as Item events (else as one list result)


class Item(msgspec.Struct, tag="item", frozen=True):
    """One value yielded by a generator handler (streamed runs only)."""

    value: Any


class Log(msgspec.Struct, tag="log", frozen=True):
    """One line the run printed or logged."""

    line: str
    stream: Literal["stdout", "stderr", "logging"]
    level: str


class Finished(msgspec.Struct, tag="finished", frozen=True):
    """The handler returned: the last event of a successful run."""

    result: Any
    duration_ms: int


class Failed(msgspec.Struct, tag="failed", frozen=True):
    """The run did not finish: the handler raised, ran out of time, memory or output, or its
    worker died. `message` says which in a sentence; `traceback` is the handler's, if any."""

    status: Literal["FAILURE", "TIMEOUT"]
    message: str
    traceback: str
    duration_ms: int


Event = Item | Log | Finished | Failed


class Setup(msgspec.Struct, tag="setup", frozen=True):
    """How a new worker confines itself before it runs anything of a user's (see sandbox.py)."""

    isolation: str
    uid: int | None  # switch to this uid and gid (the pool runs as root), else stay
    max_processes: int
    max_open_files: int
    max_file_bytes: int
    cpu_seconds: int  # the worker's whole life; each job also gets a soft limit of its own
    max_output_bytes: int
    landlock_read: list[str]  # fallback isolation: the only paths it may read
    landlock_write: list[str]  # ... and write
    allow_unix_sockets: bool  # bubblewrap: the API relay is a Unix socket (else: no socket)


class Ready(msgspec.Struct, tag="ready", frozen=True):
    """The worker is confined and waits for a job; it says how it is confined."""

    isolation: str
    pid: int
    uid: int


class Idle(msgspec.Struct, tag="idle", frozen=True):
    """After each job: whether the worker is fit for another one of the same function."""

    clean: bool  # no process or thread of the job's is left behind, no MemoryError
    cpu_seconds: float


ToWorker = Setup | Job
FromWorker = Item | Log | Finished | Failed | Ready | Idle

_encoder = msgspec.msgpack.Encoder()
to_worker_decoder: Final = msgspec.msgpack.Decoder(ToWorker)
from_worker_decoder: Final = msgspec.msgpack.Decoder(FromWorker)


def timeout_message(timeout: float) -> str:
    """What a run stopped at its timeout says (the pool's Failed; the service's record of a
    stream whose reader stalled past it)."""
    return f"the function ran past its timeout of {timeout:g} s and was stopped"


def frame(message: msgspec.Struct) -> bytes:
    """The message as one frame, length first."""
    body = _encoder.encode(message)
    return len(body).to_bytes(FRAME_HEADER, "big") + body


def frame_length(header: bytes | bytearray) -> int:
    """The length of the body that follows a frame's header."""
    return int.from_bytes(header, "big")
