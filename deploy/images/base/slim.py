"""Make a Debian root filesystem distroless-style: only what the service images run.

    python3 slim.py ROOTFS [PROGRAM...]

scripts/images.sh runs it as mmdebstrap's last customize hook on the runtime bases (never on the
builder's). What stays:

- the programs named (absolute paths in the root filesystem) besides CPython, ``sh`` (dash: the
  Dockerfile's RUN lines and the js-runner's child script) and ``env`` (npm's ``#!/usr/bin/env
  node``); every other program in /usr/bin and /usr/sbin goes (coreutils, bash, dpkg, apt's
  helpers, passwd, login, ...);
- every package owning one of the shared libraries those programs and CPython's extension modules
  load (the ELF closure, read with the root filesystem's own ``ldd`` before it goes), the C and C++
  runtimes (the wheels' and Node's shared objects load them), and the data packages below;
- every other package is removed file by file, as its dpkg list names them.

No package manager is left: /var/lib/dpkg keeps only its ``status`` file, cut down to the packages
kept, so that image scanners (Trivy, Grype) still see which Debian packages and versions the image
holds. Standard-library extension modules no server loads (CPython's own test modules, curses,
readline, dbm, nis, ossaudiodev) go too: they are what pulled ncurses, Berkeley DB and Kerberos in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

#: Data the services read at run time, kept whole: time zones (zoneinfo, croniter), the CA bundle,
#: mime types (mimetypes), /etc/services and /etc/protocols (getservbyname), /etc/os-release, the
#: users and groups, and the C and C++ runtimes the wheels' shared objects and Node load.
DATA_PACKAGES = {
    "base-files",
    "base-passwd",
    "ca-certificates",
    "media-types",
    "netbase",
    "tzdata",
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "gcc-12-base",
}
ALWAYS_PROGRAMS = ["/usr/bin/python3.11", "/usr/bin/sh", "/usr/bin/dash"]
ALWAYS_PROGRAMS += ["/usr/bin/env"]
#: CPython extension modules no server imports; the first five are CPython's own tests. With
#: them go the libraries only they load (ncurses, readline, Berkeley DB, Kerberos, SQLite).
DROPPED_EXTENSIONS = re.compile(
    r"^(_test\w*|_xxtestfuzz|_xxsubinterpreters|xxlimited\w*|_ctypes_test|_curses\w*|readline"
    r"|_dbm|nis|ossaudiodev|_sqlite3)\.cpython-"
)
#: Kept whatever package owns them: the C.UTF-8 locale (LANG=C.UTF-8: Python, Node and the
#: programs above read text as UTF-8; libc-bin, which ships it, goes).
KEPT_PATHS = ("/usr/lib/locale/C.utf8/",)
#: Left by the kept packages, never read by a server: tzdata's leap-second variants (2 MB; no
#: modyard setting names a right/ zone), desktop menus, bug-report and lintian hooks.
DROPPED_PATHS = (
    "usr/share/zoneinfo/right",
    # The standard library's sqlite3 package, whose extension module went above.
    "usr/lib/python3.11/sqlite3",
    # glibc's vector math library, linked only by code built for it (-fopenmp-simd): nothing
    # here is (ldd of every program, extension module and wheel in the images; 1 MB).
    "usr/lib/x86_64-linux-gnu/libmvec.so.1",
    "usr/share/applications",
    "usr/share/bash-completion",
    "usr/share/bug",
    "usr/share/doc-base",
    "usr/share/gdb",
    "usr/share/lintian",
    "usr/share/menu",
    "usr/share/pixmaps",
    "etc/alternatives",
    "var/cache/debconf",
    "var/lib/dpkg",
    "var/log",
)
DYNLOAD = Path("usr/lib/python3.11/lib-dynload")
PACKAGE = re.compile(r"^Package: (\S+)$", re.M)


def merged(path: str) -> str:
    """One spelling for a path on a merged-/usr system (/lib/x is /usr/lib/x)."""
    return re.sub(r"^/(bin|sbin|lib|lib64)/", r"/usr/\1/", path)


def chroot(root: Path, *argv: str, check: bool) -> str:
    """A program of the root filesystem run inside it (this script runs as root, from
    mmdebstrap's hook, on arguments scripts/images.sh gives)."""
    command = ["/usr/sbin/chroot", str(root), *argv]
    return subprocess.run(command, capture_output=True, text=True, check=check).stdout  # noqa: S603


def closure(root: Path, elves: list[str]) -> set[str]:
    """Every shared library the ELF files load, by the root filesystem's own loader."""
    output = chroot(root, "ldd", *elves, check=False)
    found = {merged(path) for path in re.findall(r"(?:=> )?(/\S+) \(0x", output)}
    return found | resolved(root, found)


def resolved(root: Path, paths: set[str]) -> set[str]:
    """The paths with their links followed inside the root filesystem (links may be absolute)."""
    output = chroot(root, "readlink", "-f", *sorted(paths), check=True)
    return {merged(line) for line in output.splitlines()}


def package_files(root: Path) -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for listing in (root / "var/lib/dpkg/info").glob("*.list"):
        package = listing.stem.split(":", 1)[0]
        files[package] = {merged(line) for line in listing.read_text().splitlines() if line}
    return files


def remove(root: Path, path: str) -> None:
    target = root / path.lstrip("/")
    if target.is_symlink() or target.is_file():
        target.unlink()


def main(root: Path, programs: list[str]) -> None:
    keep_programs = {merged(p) for p in [*ALWAYS_PROGRAMS, *programs]}
    for missing in sorted(p for p in keep_programs if not (root / p.lstrip("/")).exists()):
        sys.exit(f"slim.py: {missing} is not in {root}")
    # A link's target stays with it (/usr/sbin/ip -> /bin/ip, sh -> dash).
    keep_programs |= resolved(root, keep_programs)
    for module in (root / DYNLOAD).iterdir():
        if DROPPED_EXTENSIONS.match(module.name):
            module.unlink()
    elves = [p for p in keep_programs if not (root / p.lstrip("/")).is_symlink()]
    elves += [f"/{DYNLOAD}/{m.name}" for m in (root / DYNLOAD).iterdir()]
    libraries = closure(root, elves)

    files = package_files(root)
    status = (root / "var/lib/dpkg/status").read_text()
    needed = {pkg for pkg, owned in files.items() if owned & (libraries | keep_programs)}
    needed |= {pkg for pkg in files if pkg in DATA_PACKAGES or "python3.11" in pkg}
    kept_files = set().union(*(files[pkg] for pkg in needed))
    kept_files |= {f for owned in files.values() for f in owned if f.startswith(KEPT_PATHS)}
    for pkg, owned in files.items():
        if pkg not in needed:
            for path in owned - kept_files:
                remove(root, path)
            # Its directories, deepest first, once nothing else is in them.
            for path in sorted(owned - kept_files, key=len, reverse=True):
                target = root / path.lstrip("/")
                if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
                    target.rmdir()

    # Every other program, whoever owns it (the kept packages' own, alternatives' links).
    for directory in ("usr/bin", "usr/sbin", "usr/local/sbin"):
        for entry in (root / directory).iterdir():
            if f"/{directory}/{entry.name}" not in keep_programs and not entry.is_dir():
                entry.unlink()
    for leftover in DROPPED_PATHS:
        if (root / leftover).is_dir():
            shutil.rmtree(root / leftover)
        else:
            (root / leftover).unlink(missing_ok=True)
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/log").mkdir()

    # The dpkg database: the kept packages' paragraphs of its status file only.
    kept = [p for p in status.split("\n\n") if PACKAGE.search(p)]
    kept = [p for p in kept if PACKAGE.search(p).group(1) in needed]  # type: ignore[union-attr]
    (root / "var/lib/dpkg/status").write_text("\n\n".join(kept).strip() + "\n")
    print(f"slim.py: kept {len(needed)} of {len(files)} packages: {' '.join(sorted(needed))}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
