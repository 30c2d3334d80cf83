"""A Redis server on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .ports import wait_for_port


def redis_start(folder: Path, port: int, *, persist: bool = False) -> subprocess.Popen:
    """redis-server on 127.0.0.1:`port`, its files and log in `folder`.

    `persist` keeps the data in folder/redis.rdb across runs (`make run`);
    otherwise nothing is written to disk.
    """
    folder.mkdir(parents=True, exist_ok=True)
    storage = (["--save", "60 1", "--dbfilename", "redis.rdb"] if persist
               else ["--save", "", "--appendonly", "no"])
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *storage,
         "--dir", str(folder), "--daemonize", "no", "--logfile", str(folder / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for_port(port, process=process)
    return process
