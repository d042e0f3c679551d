"""One live process per output folder: a run folder (tools/fit.py) or a sample folder (tools/sample.py) is written
by the process that holds its lock, `<parent>/.<folder name>.lock`, beside the folder so that it outlives the
folder being moved aside (run.resume=never) or removed (a new run that failed).

The lock is an flock(2) on that file, which the kernel drops when its process ends however it ends, so the lock
of a killed process is taken over by the next launch, with no stale-lock cleanup. The file names its holder
(pid, host, start, command) for the message a second launch gets. Only global rank 0 locks: the other ranks of a
job are its own processes. On file systems where flock is not shared between hosts (some NFS mounts) two launches
on different hosts are not kept apart.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from nexus.errors import UserError
from nexus.provenance import command_line, now


@dataclass
class FolderLock:
    path: Path
    fd: int
    took_over: dict | None = None        # the holder a killed process left recorded, if any
    made: Path | None = None             # the outermost folder acquire created (removed on release when empty)

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)     # while still held: a waiting launch re-checks the inode
        finally:
            os.close(self.fd)
            self.fd = -1
        folder = self.path.parent          # a launch refused later leaves no folder it made only for its lock
        while self.made is not None and folder.is_relative_to(self.made):
            try:
                folder.rmdir()
            except OSError:                # not empty: the run made something there
                break
            folder = folder.parent


def lock_path(folder: str | Path) -> Path:
    folder = Path(folder).absolute()
    return folder.with_name(f".{folder.name}.lock")


def holder(folder: str | Path) -> dict | None:
    """Who holds (or last held) the folder's lock, as recorded in the lock file; None when there is none."""
    try:
        return json.loads(lock_path(folder).read_text() or "null")
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def acquire(folder: str | Path, how_to_avoid: str) -> FolderLock:
    """Lock `folder` for this process, or raise UserError naming the live process that holds it (and
    `how_to_avoid`, e.g. 'choose another run.name'). Creates the folder's parent if needed, never the folder."""
    path = lock_path(folder)
    made = next((a for a in reversed([path.parent, *path.parent.parents]) if not a.exists()), None)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:          # a releasing holder removed the empty parent it had made: again
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = holder(folder) or {}
            raise UserError(f"{Path(folder)} is being written by another process (pid {other.get('pid', '?')} on "
                            f"{other.get('host', '?')}, since {other.get('since', '?')}: {other.get('command', '?')}): "
                            f"wait for it to end, or {how_to_avoid}") from None
        try:                        # the file may have been released (unlinked) between our open and our flock
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    left = os.read(fd, 1 << 16)
    try:
        previous = json.loads(left) if left.strip() else None
    except json.JSONDecodeError:
        previous = None
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": now(), "command": command_line()}
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(me).encode())
    os.fsync(fd)
    return FolderLock(path, fd, previous, made)


def hold(folder: str | Path, how_to_avoid: str, rank: int = 0) -> FolderLock | None:
    """`acquire` on global rank 0 (saying so when a killed process's lock is taken over); None on other ranks."""
    if rank != 0:
        return None
    lock = acquire(folder, how_to_avoid)
    if lock.took_over and lock.took_over.get("pid") != os.getpid():
        who = lock.took_over
        print(f"note: {Path(folder)} was last held by pid {who.get('pid')} on {who.get('host')}, which has ended: "
              "taken over", flush=True)
    return lock
