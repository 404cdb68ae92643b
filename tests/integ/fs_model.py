#!/usr/bin/env python3
"""Model-based test of the file system through vmfsd mounts.

A long random sequence of operations is applied both to the mounted volume
(through one mount point, or through several: hosts interleaved at random)
and to an in-memory model of the namespace.  After every step the result
(value or errno) must match the model, the touched entries and their parent
directory must look the same through every host, and every few steps the
whole tree is compared, content included.

usage: fs_model.py SEED STEPS MOUNT [MOUNT...]
Prints the seed; a failure prints the step, the operation and the last ten
operations, so `fs_model.py SEED ...` replays it.
"""
import errno
import os
import random
import stat
import sys

MAX_FILE = 3 << 20          # crosses inline, sub-block and file block sizes
NAMES = ["a", "b", "c", "d", "dir", "x.vmdk", "y-flat.vmdk", "long" * 20]


class Node:
    def __init__(self, kind, mode, target=None):
        self.kind = kind            # "f", "d", "l"
        self.mode = mode
        self.data = bytearray()
        self.children = {}          # for directories
        self.target = target        # for symlinks


class Model:
    def __init__(self):
        self.root = Node("d", 0o755)

    def lookup(self, path):
        n = self.root
        for part in [p for p in path.split("/") if p]:
            if n.kind != "d":
                raise OSError(errno.ENOTDIR, path)
            if part not in n.children:
                raise OSError(errno.ENOENT, path)
            n = n.children[part]
        return n

    def parent(self, path):
        head, name = os.path.split(path)
        p = self.lookup(head)
        if p.kind != "d":
            raise OSError(errno.ENOTDIR, path)
        return p, name

    def paths(self, kind=None):
        out = []

        def walk(n, prefix):
            for name, c in n.children.items():
                p = prefix + "/" + name
                if kind is None or c.kind == kind:
                    out.append(p)
                if c.kind == "d":
                    walk(c, p)
        walk(self.root, "")
        return out

    def nlink(self, n):
        if n.kind != "d":
            return 1
        return 2 + sum(1 for c in n.children.values() if c.kind == "d")


def outcome(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


class Runner:
    def __init__(self, seed, mounts):
        self.rng = random.Random(seed)
        self.mounts = mounts
        self.model = Model()
        self.history = []
        self.step = 0

    # ---- operations: each returns (model result, real result) ------------
    def pick_path(self, kind=None, fresh=0.3):
        existing = self.model.paths(kind)
        dirs = [""] + self.model.paths("d")
        if existing and self.rng.random() > fresh:
            return self.rng.choice(existing)
        return self.rng.choice(dirs) + "/" + self.rng.choice(NAMES)

    def real(self, m, path):
        return m + path

    def op_create(self, m):
        p = self.pick_path(fresh=0.8)
        mode = self.rng.choice([0o644, 0o600, 0o755])

        def model():
            par, name = self.model.parent(p)
            if name in par.children:
                raise OSError(errno.EEXIST, p)
            par.children[name] = Node("f", mode)

        def real():
            fd = os.open(self.real(m, p), os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
            os.close(fd)
        return "create %s %o" % (p, mode), model, real

    def op_mkdir(self, m):
        p = self.pick_path(fresh=0.8)

        def model():
            par, name = self.model.parent(p)
            if name in par.children:
                raise OSError(errno.EEXIST, p)
            par.children[name] = Node("d", 0o755)

        def real():
            os.mkdir(self.real(m, p), 0o755)
        return "mkdir %s" % p, model, real

    def op_symlink(self, m):
        p = self.pick_path(fresh=0.8)
        # targets that never exist: a link is never followed to a node
        # (components up to 250 bytes: a longer one would be ENAMETOOLONG
        # when followed; the whole target up to ~500 bytes)
        target = self.rng.choice(["../zz-missing", "x" * self.rng.randint(1, 250),
                                  "/abs/t", "y" * 200 + "/" + "z" * 250])

        def model():
            par, name = self.model.parent(p)
            if name in par.children:
                raise OSError(errno.EEXIST, p)
            par.children[name] = Node("l", 0o777, target)

        def real():
            os.symlink(target, self.real(m, p))
        return "symlink %s -> %d bytes" % (p, len(target)), model, real

    def op_write(self, m):
        p = self.pick_path("f", fresh=0.1)
        size = self.rng.choice([1, 100, 1000, 4096, 8192, 70000, 1 << 20])
        off = self.rng.choice([0, self.rng.randint(0, MAX_FILE - size)])
        seed = self.rng.getrandbits(32)
        data = random.Random(seed).randbytes(size)

        def model():
            n = self.model.lookup(p)
            if n.kind == "d":
                raise OSError(errno.EISDIR, p)
            if n.kind == "l":
                raise OSError(errno.ENOENT, p)   # follows a dangling link
            if len(n.data) < off:
                n.data.extend(bytes(off - len(n.data)))
            n.data[off:off + size] = data

        def real():
            fd = os.open(self.real(m, p), os.O_WRONLY)
            try:
                assert os.pwrite(fd, data, off) == size
                os.fsync(fd)
            finally:
                os.close(fd)
        return "write %s off %d len %d" % (p, off, size), model, real

    def op_truncate(self, m):
        p = self.pick_path("f", fresh=0.1)
        size = self.rng.choice([0, 1, 1024, 5000, 65536, 1 << 20, 2 << 20])

        def model():
            n = self.model.lookup(p)
            if n.kind == "d":
                raise OSError(errno.EISDIR, p)
            if n.kind == "l":
                raise OSError(errno.ENOENT, p)   # follows a dangling link
            if size < len(n.data):
                del n.data[size:]
            else:
                n.data.extend(bytes(size - len(n.data)))

        def real():
            os.truncate(self.real(m, p), size)
        return "truncate %s %d" % (p, size), model, real

    def op_punch(self, m):
        p = self.pick_path("f", fresh=0.0)
        off = self.rng.randint(0, MAX_FILE)
        ln = self.rng.choice([4096, 65536, 1 << 20, 3 << 20])

        def model():
            n = self.model.lookup(p)
            if n.kind == "d":
                raise OSError(errno.EISDIR, p)
            if n.kind == "l":
                raise OSError(errno.ENOENT, p)   # follows a dangling link
            end = min(off + ln, len(n.data))
            if off < end:
                n.data[off:end] = bytes(end - off)

        def real():
            fd = os.open(self.real(m, p), os.O_WRONLY)
            try:
                # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int,
                                           ctypes.c_long, ctypes.c_long]
                if libc.fallocate(fd, 3, off, ln) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, os.strerror(e))
            finally:
                os.close(fd)
        return "punch %s off %d len %d" % (p, off, ln), model, real

    def op_unlink(self, m):
        p = self.pick_path(fresh=0.1)

        def model():
            par, name = self.model.parent(p)
            if name not in par.children:
                raise OSError(errno.ENOENT, p)
            if par.children[name].kind == "d":
                raise OSError(errno.EISDIR, p)
            del par.children[name]

        def real():
            os.unlink(self.real(m, p))
        return "unlink %s" % p, model, real

    def op_rmdir(self, m):
        p = self.pick_path("d", fresh=0.1)

        def model():
            par, name = self.model.parent(p)
            if name not in par.children:
                raise OSError(errno.ENOENT, p)
            n = par.children[name]
            if n.kind != "d":
                raise OSError(errno.ENOTDIR, p)
            if n.children:
                raise OSError(errno.ENOTEMPTY, p)
            del par.children[name]

        def real():
            os.rmdir(self.real(m, p))
        return "rmdir %s" % p, model, real

    def op_rename(self, m):
        src = self.pick_path(fresh=0.05)
        dst = self.pick_path(fresh=0.6)

        def model():
            spar, sname = self.model.parent(src)
            if sname not in spar.children:
                raise OSError(errno.ENOENT, src)
            dpar, dname = self.model.parent(dst)
            n = spar.children[sname]
            if src == dst:
                return
            # the VFS's ancestor checks come before any type check
            if dst.startswith(src + "/"):
                raise OSError(errno.EINVAL, dst)
            if src.startswith(dst + "/"):
                raise OSError(errno.ENOTEMPTY, dst)
            if dname in dpar.children:
                t = dpar.children[dname]
                if n.kind == "d" and t.kind != "d":
                    raise OSError(errno.ENOTDIR, dst)
                if n.kind != "d" and t.kind == "d":
                    raise OSError(errno.EISDIR, dst)
                if t.kind == "d" and t.children:
                    raise OSError(errno.ENOTEMPTY, dst)
            del spar.children[sname]
            dpar.children[dname] = n

        def real():
            os.rename(self.real(m, src), self.real(m, dst))
        return "rename %s %s" % (src, dst), model, real

    def op_chmod(self, m):
        p = self.pick_path(fresh=0.05)
        mode = self.rng.choice([0o600, 0o640, 0o700, 0o755, 0o444])

        def model():
            n = self.model.lookup(p)
            if n.kind == "l":
                # chmod follows the link; ours point nowhere that exists
                raise OSError(errno.ENOENT, p)
            n.mode = mode

        def real():
            os.chmod(self.real(m, p), mode)
        return "chmod %s %o" % (p, mode), model, real

    OPS = [("op_create", 14), ("op_mkdir", 6), ("op_symlink", 3),
           ("op_write", 20), ("op_truncate", 6), ("op_punch", 4),
           ("op_unlink", 8), ("op_rmdir", 5), ("op_rename", 12),
           ("op_chmod", 4)]

    # ---- comparison ----------------------------------------------------------
    def check_entry(self, path, n):
        for m in self.mounts:
            rp = self.real(m, path)
            st = os.lstat(rp)
            kind = {stat.S_IFREG: "f", stat.S_IFDIR: "d",
                    stat.S_IFLNK: "l"}.get(stat.S_IFMT(st.st_mode), "?")
            if kind != n.kind:
                self.fail("%s on %s: type %s, model %s" % (path, m, kind, n.kind))
            if n.kind != "l" and stat.S_IMODE(st.st_mode) != n.mode:
                self.fail("%s on %s: mode %o, model %o" % (
                    path, m, stat.S_IMODE(st.st_mode), n.mode))
            if st.st_nlink != self.model.nlink(n):
                self.fail("%s on %s: nlink %d, model %d" % (
                    path, m, st.st_nlink, self.model.nlink(n)))
            if n.kind == "f":
                if st.st_size != len(n.data):
                    self.fail("%s on %s: size %d, model %d" % (
                        path, m, st.st_size, len(n.data)))
            elif n.kind == "l":
                t = os.readlink(rp)
                if t != n.target:
                    self.fail("%s on %s: link target differs" % (path, m))
            elif n.kind == "d":
                names = sorted(os.listdir(rp))
                if names != sorted(n.children):
                    self.fail("%s on %s: entries %s, model %s" % (
                        path, m, names, sorted(n.children)))

    def check_data(self, path, n):
        m = self.rng.choice(self.mounts)
        with open(self.real(m, path), "rb") as f:
            got = f.read()
        if got != bytes(n.data):
            first = next((i for i in range(min(len(got), len(n.data)))
                          if got[i] != n.data[i]), min(len(got), len(n.data)))
            self.fail("%s on %s: content differs at byte %d (len %d, model %d)"
                      % (path, m, first, len(got), len(n.data)))

    def check_tree(self):
        def walk(n, prefix):
            self.check_entry(prefix or "/", n)
            for name, c in n.children.items():
                p = prefix + "/" + name
                if c.kind == "d":
                    walk(c, p)
                else:
                    self.check_entry(p, c)
                    if c.kind == "f":
                        self.check_data(p, c)
        walk(self.model.root, "")

    def fail(self, msg):
        print("FAIL at step %d: %s" % (self.step, msg))
        print("last operations:")
        for h in self.history[-10:]:
            print("  " + h)
        sys.exit(1)

    def touched(self, desc):
        words = desc.split()
        return [w for w in words[1:] if w.startswith("/")]

    def run(self, steps):
        names = [n for n, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        counts = {}
        for self.step in range(1, steps + 1):
            m = self.rng.choice(self.mounts)
            desc, model, real = getattr(self, self.rng.choices(names, weights)[0])(m)
            host = self.mounts.index(m)
            want = outcome(model)
            got = outcome(real)
            if len(self.mounts) > 1:
                # the other hosts read it once it is in place (fsync of
                # the mount: every change of this host, write-back journal)
                fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.history.append("%d host%d %s: %s" % (self.step, host, desc, got))
            key = desc.split()[0] + (" " + got[1] if got[0] == "err" else "")
            counts[key] = counts.get(key, 0) + 1
            if want[0] != got[0] or (want[0] == "err" and want[1] != got[1]):
                self.fail("%s on host %d: volume %s, model %s" % (desc, host, got, want))
            for p in self.touched(desc):
                for q in (p, os.path.dirname(p) or "/"):
                    try:
                        n = self.model.lookup(q)
                    except OSError:
                        continue
                    self.check_entry(q, n)
                    if n.kind == "f":
                        self.check_data(q, n)
            if self.step % 50 == 0:
                self.check_tree()
        self.check_tree()
        print("%d steps on %d host(s), every one matched the model" % (
            steps, len(self.mounts)))
        print("operations: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    seed, steps = int(sys.argv[1]), int(sys.argv[2])
    os.umask(0)
    print("seed %d" % seed)
    Runner(seed, sys.argv[3:]).run(steps)


if __name__ == "__main__":
    main()
