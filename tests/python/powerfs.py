"""A filesystem that loses what was not flushed when the power is cut (the power-loss test's disk).

Run as `python powerfs.py MOUNTPOINT [--state FILE]`: a FUSE filesystem (libfuse3 through
`mfusepy`) held in memory, where every file and directory has two states, what a reader sees now
and what would survive a power cut:

- a file's bytes, size and punched holes become durable when the file is flushed (`fsync` or
  `fdatasync`), and only then;
- a directory's entries (creating, renaming, removing a name) become durable when the directory
  itself is flushed, as POSIX asks (ext4 and XFS are kinder: the test must not rely on that);
- a file whose name never became durable is gone after the cut, whatever its own flushes.

The control file `/.powerfs` at the mount's root takes one command per write: `cut` takes the
durable state at that instant and fails every later operation with EIO (the machine is off: no
acknowledgement can follow the cut), `sync` makes everything durable (the clean shutdown of an
operating system, for the set-up before a test). Unmounted after a cut, the process writes the
durable state to `--state FILE` and exits; started again with that file, it serves what the disk
would hold after the power came back. Writes into shared memory maps reach it like any write
(no write-back cache): SQLite's `-shm` index is rebuilt from the WAL after the cut, as on a disk.

`fallocate(PUNCH_HOLE | KEEP_SIZE)` and `lseek(SEEK_DATA / SEEK_HOLE)` are served, so vna's
packed small objects run here as on ext4.

Our own: LazyFS (dsrhaslab) does this in C++ but is packaged nowhere we can install from, and
the kernel here has no device-mapper (`dm-flakey`, `dm-log-writes`).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import os
import pickle
import stat
import sys
import threading
import time

os.environ.setdefault("FUSE_LIBRARY_PATH", ctypes.util.find_library("fuse3") or "libfuse3.so.3")
import mfusepy  # noqa: E402  (the library path above is read at import)

CONTROL = "/.powerfs"
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
SEEK_DATA, SEEK_HOLE = 3, 4
BLOCK = 4096


class Node:
    """A file or a directory: its state now and its durable state."""

    def __init__(self, mode: int):
        self.mode = mode
        self.mtime = time.time_ns()
        if stat.S_ISDIR(mode):
            self.entries: dict[str, Node] = {}
            self.durable_entries: dict[str, Node] = {}
        else:
            self.data = bytearray()
            self.holes: list[tuple[int, int]] = []  # punched [start, end), sorted, disjoint
            self.durable: tuple[bytes, list[tuple[int, int]]] = (b"", [])

    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    def flush(self) -> None:
        if self.is_dir():
            self.durable_entries = dict(self.entries)
        else:
            self.durable = (bytes(self.data), list(self.holes))

    def fill(self, start: int, end: int) -> None:
        """[start, end) now holds data: no hole there any more."""
        kept = []
        for s, e in self.holes:
            if e <= start or s >= end:
                kept.append((s, e))
            else:
                if s < start:
                    kept.append((s, start))
                if e > end:
                    kept.append((end, e))
        self.holes = kept

    def punch(self, start: int, end: int) -> None:
        end = min(end, len(self.data))
        if start >= end:
            return
        self.data[start:end] = bytes(end - start)
        # Whole blocks become a hole, as a filesystem with 4 KiB blocks reports them.
        first, last = -(-start // BLOCK) * BLOCK, end // BLOCK * BLOCK
        if end == len(self.data):
            last = end
        if first < last:
            self.fill(first, last)
            self.holes = sorted(self.holes + [(first, last)])
            merged: list[tuple[int, int]] = []
            for s, e in self.holes:
                if merged and merged[-1][1] >= s:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], e))
                else:
                    merged.append((s, e))
            self.holes = merged


def surviving(root: Node) -> Node:
    """The tree a power cut leaves: durable names, durable bytes."""
    copies: dict[int, Node] = {}

    def copy(node: Node) -> Node:
        if id(node) in copies:
            return copies[id(node)]
        new = Node(node.mode)
        copies[id(node)] = new
        if node.is_dir():
            new.entries = {name: copy(child) for name, child in node.durable_entries.items()}
            new.durable_entries = dict(new.entries)
        else:
            data, holes = node.durable
            new.data, new.holes, new.durable = bytearray(data), list(holes), (data, list(holes))
        return new

    return copy(root)


class PowerFs(mfusepy.Operations):
    use_ns = True

    def __init__(self, root: Node):
        self.root = root
        self.mutex = threading.RLock()
        self.dead = False
        self.after_cut: Node | None = None
        self.flushes = 0

    # -- paths --
    def _lookup(self, path: str) -> Node:
        node = self.root
        for part in filter(None, path.split("/")):
            if not node.is_dir() or part not in node.entries:
                raise mfusepy.FuseOSError(errno.ENOENT)
            node = node.entries[part]
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        head, name = path.rstrip("/").rsplit("/", 1)
        parent = self._lookup(head or "/")
        if not parent.is_dir():
            raise mfusepy.FuseOSError(errno.ENOTDIR)
        return parent, name

    def _alive(self) -> None:
        if self.dead:
            raise mfusepy.FuseOSError(errno.EIO)

    # -- the control file --
    def _control(self, command: str) -> None:
        if command == "cut":
            self.after_cut = surviving(self.root)
            self.dead = True
        elif command == "sync":
            stack = [self.root]
            while stack:
                node = stack.pop()
                node.flush()
                if node.is_dir():
                    stack.extend(node.entries.values())
        else:
            raise mfusepy.FuseOSError(errno.EINVAL)

    # -- operations --
    def getattr(self, path, fh=None):
        if path == CONTROL:
            return {"st_mode": stat.S_IFREG | 0o600, "st_nlink": 1, "st_size": 0}
        with self.mutex:
            node = self._lookup(path)
            size = 0 if node.is_dir() else len(node.data)
            return {
                "st_mode": node.mode,
                "st_nlink": 2 if node.is_dir() else 1,
                "st_size": size,
                "st_blksize": BLOCK,
                "st_blocks": -(-size // 512),
                "st_mtime": node.mtime,
                "st_ctime": node.mtime,
                "st_atime": node.mtime,
            }

    def readdir(self, path, fh):
        with self.mutex:
            return [".", "..", *self._lookup(path).entries]

    def access(self, path, amode):
        return 0

    def statfs(self, path):
        return {"f_bsize": BLOCK, "f_frsize": BLOCK, "f_blocks": 1 << 24, "f_bfree": 1 << 23,
                "f_bavail": 1 << 23, "f_files": 1 << 20, "f_ffree": 1 << 19, "f_namemax": 255}

    def mkdir(self, path, mode):
        with self.mutex:
            self._alive()
            parent, name = self._parent(path)
            if name in parent.entries:
                raise mfusepy.FuseOSError(errno.EEXIST)
            parent.entries[name] = Node(stat.S_IFDIR | (mode & 0o7777))
            parent.mtime = time.time_ns()

    def rmdir(self, path):
        with self.mutex:
            self._alive()
            parent, name = self._parent(path)
            node = self._lookup(path)
            if not node.is_dir():
                raise mfusepy.FuseOSError(errno.ENOTDIR)
            if node.entries:
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del parent.entries[name]

    def create(self, path, mode, fi=None):
        with self.mutex:
            self._alive()
            parent, name = self._parent(path)
            if name not in parent.entries:
                parent.entries[name] = Node(stat.S_IFREG | (mode & 0o7777))
            return 0

    def open(self, path, flags):
        if path == CONTROL:
            return 0
        with self.mutex:
            self._alive()
            node = self._lookup(path)
            if flags & os.O_TRUNC:
                node.data = bytearray()
                node.holes = []
            return 0

    def read(self, path, size, offset, fh):
        with self.mutex:
            self._alive()
            return bytes(self._lookup(path).data[offset:offset + size])

    def write(self, path, data, offset, fh):
        if path == CONTROL:
            with self.mutex:
                self._control(bytes(data).decode().strip())
            return len(data)
        with self.mutex:
            self._alive()
            node = self._lookup(path)
            end = offset + len(data)
            if len(node.data) < offset:
                node.holes.append((len(node.data), offset))  # a sparse gap reads as a hole
                node.data.extend(bytes(offset - len(node.data)))
            node.data[offset:end] = data
            node.fill(offset, end)
            node.mtime = time.time_ns()
            return len(data)

    def truncate(self, path, length, fh=None):
        if path == CONTROL:
            return 0
        with self.mutex:
            self._alive()
            node = self._lookup(path)
            if length < len(node.data):
                del node.data[length:]
                node.holes = [(s, min(e, length)) for s, e in node.holes if s < length]
            else:
                node.holes.append((len(node.data), length))
                node.data.extend(bytes(length - len(node.data)))

    def unlink(self, path):
        with self.mutex:
            self._alive()
            parent, name = self._parent(path)
            if name not in parent.entries:
                raise mfusepy.FuseOSError(errno.ENOENT)
            del parent.entries[name]

    def rename(self, old, new):
        with self.mutex:
            self._alive()
            old_parent, old_name = self._parent(old)
            new_parent, new_name = self._parent(new)
            node = old_parent.entries.get(old_name)
            if node is None:
                raise mfusepy.FuseOSError(errno.ENOENT)
            target = new_parent.entries.get(new_name)
            if target is not None and target.is_dir() and target.entries:
                raise mfusepy.FuseOSError(errno.ENOTEMPTY)
            del old_parent.entries[old_name]
            new_parent.entries[new_name] = node

    def fsync(self, path, datasync, fh):
        with self.mutex:
            self._alive()
            self._lookup(path).flush()
            self.flushes += 1

    def fsyncdir(self, path, datasync, fh):
        return self.fsync(path, datasync, fh)

    def fallocate(self, path, mode, offset, size, fh):
        with self.mutex:
            self._alive()
            node = self._lookup(path)
            if mode == FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
                node.punch(offset, offset + size)
            elif mode in (0, FALLOC_FL_KEEP_SIZE):
                if mode == 0 and offset + size > len(node.data):
                    self.truncate(path, offset + size)  # the lock is re-entrant
            else:
                raise mfusepy.FuseOSError(errno.EOPNOTSUPP)

    def lseek(self, path, offset, whence, fh):
        with self.mutex:
            self._alive()
            node = self._lookup(path)
            size = len(node.data)
            if offset >= size:
                raise mfusepy.FuseOSError(errno.ENXIO)
            if whence == SEEK_DATA:
                at = offset
                for s, e in node.holes:
                    if s <= at < e:
                        at = e
                if at >= size:
                    raise mfusepy.FuseOSError(errno.ENXIO)
                return at
            if whence == SEEK_HOLE:
                return min([s if s > offset else offset for s, e in node.holes if e > offset] + [size])
            raise mfusepy.FuseOSError(errno.EINVAL)

    def chmod(self, path, mode):
        with self.mutex:
            node = self._lookup(path)
            node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)

    def chown(self, path, uid, gid):
        return 0

    def utimens(self, path, times=None):
        return 0


class Fuse(mfusepy.FUSE):
    """mfusepy's wrapper of libfuse3's `lseek`, which it lists but does not forward."""

    def lseek(self, path, offset, whence, fip):
        decoded = None if path is None else path.decode(self.encoding, self.errors)
        return self.operations.lseek(decoded, offset, whence, fip.contents.fh)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("mountpoint")
    args.add_argument("--state", help="where the durable state goes after a cut, and comes from at start")
    opts = args.parse_args()
    root = Node(stat.S_IFDIR | 0o755)
    if opts.state and os.path.exists(opts.state):
        with open(opts.state, "rb") as f:
            root = pickle.load(f)
    fs = PowerFs(root)
    # No threads: every operation runs alone, in the order the kernel sends them.
    Fuse(fs, opts.mountpoint, foreground=True, nothreads=True, fsname="powerfs")
    if fs.after_cut is not None and opts.state:
        sys.setrecursionlimit(10000)
        with open(opts.state + ".tmp", "wb") as f:
            pickle.dump(fs.after_cut, f)
        os.replace(opts.state + ".tmp", opts.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
