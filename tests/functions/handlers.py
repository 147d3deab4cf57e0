"""The functions the runtime tests deploy, as source text (written into folders by the
fixtures, as the service writes a deployed version's code)."""

PLAIN = '''
"""Well-behaved handlers: every shape the runtime accepts."""

import asyncio
import logging
import os
import tempfile

calls = 0


def main(params, user_data):
    global calls
    calls += 1
    print("hello from", user_data["id"])
    return {"params": params, "uid": os.getuid(), "calls": calls}


async def twice(params, user_data):
    await asyncio.sleep(0)
    return params * 2


def count(params, user_data):
    yield from range(params)


async def acount(params, user_data):
    for number in range(params):
        await asyncio.sleep(0)
        yield number


def forever(params, user_data):
    number = 0
    while True:
        yield number
        number += 1


def logs(params, user_data):
    logging.getLogger("orders").warning("low stock: %s", params)
    print("partial line without newline", end="")
    return None


def fails(params, user_data):
    raise ValueError(f"bad order {params}")


def unsendable(params, user_data):
    return object()


def leave_in_tmp(params, user_data):
    path = os.path.join(tempfile.gettempdir(), "left-behind")
    with open(path, "w") as handle:
        handle.write(params)
    return path


def read_path(params, user_data):
    with open(params) as handle:
        return handle.read()


def environment(params, user_data):
    return {key: os.environ.get(key) for key in params}


def change_environment(params, user_data):
    for key, value in params.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return sorted(os.environ)


def call_api(params, user_data):
    from roost import AsyncClient, Client

    if params == "async":
        async def check():
            async with AsyncClient(max_retries=0) as client:
                return await client.health.check()

        return check()
    with Client(max_retries=0) as client:  # configured by the runtime's environment
        return client.health.check()


def call_over_websockets(params, user_data):
    from roost import AsyncClient

    async def check():
        async with AsyncClient(max_retries=0, timeout=20) as client:
            realtime = await client.realtime.call("health.check")
            pooled = await client.rpc.call("health.check")
            return [realtime["status"], pooled["status"]]

    return check()
'''

OTHER = '''
"""Another tenant's module: no other function may import it."""

TOKEN = "other-tenant-secret"


def main(params, user_data):
    return TOKEN
'''

HOSTILE = '''
"""Handlers that try to get out of the sandbox or to exhaust it."""

import os
import socket
import sys
import time


def read_file(params, user_data):
    with open(params, "rb") as handle:
        return handle.read(100)


def write_file(params, user_data):
    with open(params, "w") as handle:
        handle.write("escaped")
    return params


def tcp_connect(params, user_data):
    host, port = params
    with socket.create_connection((host, port), timeout=2):
        return "connected"


def udp_send(params, user_data):
    host, port = params
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"exfiltrated", (host, port))
    return "sent"


def unix_connect(params, user_data):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(params)
    return "connected"


def fork_bomb(params, user_data):
    children = 0
    for _ in range(params):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    return children


def allocate(params, user_data):
    hoard = []
    for _ in range(params):
        hoard.append(bytearray(1024 * 1024))
    return len(hoard)


def spin(params, user_data):
    while True:
        pass


def print_a_lot(params, user_data):
    chunk = "x" * (1024 * 1024)
    for _ in range(params):
        print(chunk)


def write_to_fd(params, user_data):
    line = b"x" * (1024 * 1024) + b"\\n"
    for _ in range(params):
        os.write(1, line)


def import_from(params, user_data):
    folder, module = params
    sys.path.insert(0, folder)
    return __import__(module).TOKEN


def crash(params, user_data):
    os.kill(os.getpid(), 11)


def exit_worker(params, user_data):
    os._exit(3)


def die_when_idle(params, user_data):
    import signal

    signal.setitimer(signal.ITIMER_REAL, params)  # SIGALRM ends it (a thread would be unclean)
    return "dying soon"


def leave_a_child(params, user_data):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
    return "child left running"


def leave_a_thread(params, user_data):
    import threading

    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    return "thread left running"


async def use_a_thread(params, user_data):
    import asyncio

    return await asyncio.to_thread(sum, params)


def say_raw(params, user_data):
    os.write(1, f"{params}\\n".encode())  # past sys.stdout, as a subprocess would
    return "said"


def fill_tmp(params, user_data):
    import tempfile

    written = 0
    for number in range(params["files"]):
        with open(os.path.join(tempfile.gettempdir(), f"fill{number}"), "wb") as out:
            out.write(b"x" * params["each"])
        written += params["each"]
    return written


def ipc(params, user_data):
    """Every kind of memory shared past the worker's life or its limits, made or refused."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    private, create = 0, 0o1000 | 0o600
    made = {
        "shmget": libc.shmget(private, 1 << 20, create),
        "msgget": libc.msgget(private, create),
        "semget": libc.semget(private, 1, create),
        "mq_open": libc.mq_open(b"/roost-escape", 0o100 | 0o2, 0o600, None),
    }
    try:
        made["memfd_create"] = os.memfd_create("hoard")
    except PermissionError:
        made["memfd_create"] = -1
    return made


def datagram_to(params, user_data):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.sendto(b"exfiltrated", params)
    return "sent"


def datagram_pair_to(params, user_data):
    first, second = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with first, second:
        first.sendto(b"exfiltrated", params)
    return "sent"


def yield_then_sleep(params, user_data):
    yield "started"
    time.sleep(params)
    yield "ran past its timeout"
'''
