"""Storage figures: a 100 MB file through the SDK, and how much server memory it took.

    python benchmarks/storage.py [--megabytes 100]

Prints, from one run on the embedded default (local folder), with the server in a process of
its own: upload and download MB/s through the sync SDK next to a plain file copy on the same
disk, and the server's peak RSS growth during the transfers (goal: < 32 MB, which shows the
file is streamed, never held whole).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_overhead import ADMIN, PASSWORD, start

from roost import Client


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc (Linux only)")


def rate(megabytes: float, begin: float) -> float:
    return megabytes / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description="Roost storage figures")
    parser.add_argument("--megabytes", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roost-bench-"))
    source = work / "big.bin"
    with source.open("wb") as handle:
        for _ in range(args.megabytes):
            handle.write(os.urandom(1024 * 1024))
    server, url = start("roost", str(work / "data"), secrets.token_urlsafe(40))
    with Client(api_url=url, timeout=300) as client:
        admin = client.auth.sign_in_with_password(ADMIN, PASSWORD)
        admin.storage.create_bucket("bench")
        files = admin.storage.from_("bench")
        files.upload([{"file": b"warm up", "name": "small.bin"}])
        before = peak_rss_mb(server.pid)

        begin = time.perf_counter()
        shutil.copyfile(source, work / "copy.bin")
        os.sync()
        copy_rate = rate(args.megabytes, begin)

        begin = time.perf_counter()
        files.upload([{"file": source, "name": "big.bin"}])
        upload_rate = rate(args.megabytes, begin)

        begin = time.perf_counter()
        files.download_to("big.bin", work / "back.bin")
        download_rate = rate(args.megabytes, begin)
        after = peak_rss_mb(server.pid)
    assert (work / "back.bin").stat().st_size == source.stat().st_size
    print(f"file of {args.megabytes} MB; plain file copy on the same disk: {copy_rate:,.0f} MB/s")
    print(
        f"1. upload through the SDK: {upload_rate:,.0f} MB/s "
        f"({upload_rate / copy_rate:.2f}x of copy)"
    )
    print(
        f"2. download through the SDK: {download_rate:,.0f} MB/s "
        f"({download_rate / copy_rate:.2f}x of copy)"
    )
    print(
        f"3. server peak RSS: {before:,.1f} MB before, {after:,.1f} MB after; grew "
        f"{after - before:,.1f} MB (goal < 32 MB)"
    )
    server.terminate()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
