"""Build helpers for layer/Makefile: strip an installed tree, write a reproducible zip, report sizes.

Standard library only, so that the Makefile works with any ``python3`` >= 3.9 and nothing installed.

    python tools.py strip DIR             remove caches, tests, console scripts and install-time metadata
    python tools.py zip SRC_DIR OUT.zip   zip SRC_DIR's contents (sorted, fixed timestamps, modes kept)
    python tools.py sizes OUT.zip         print zipped and unzipped sizes
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import zipfile
from pathlib import Path

# 1980-01-01, the earliest time a zip entry can hold: the same inputs always give byte-identical zips, so an
# unchanged layer does not look changed to CloudFormation (which would otherwise publish a new version).
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Directories that never belong in a layer. Only removed *inside* a package (depth >= 2), never at the top.
_JUNK_DIRS = {"__pycache__", "tests"}
# Install-time files in *.dist-info: RECORD lists paths and hashes we just changed; direct_url.json holds the
# build machine's path. METADATA, WHEEL, top_level.txt and licenses stay (importlib.metadata reads METADATA).
_JUNK_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def strip(root: Path) -> None:
    """Remove from an installed ``--target`` tree everything Lambda does not need."""
    for sub in ("bin", "share"):  # console scripts and data files pip puts beside the packages
        shutil.rmtree(root / sub, ignore_errors=True)
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if not path.exists():
            continue
        rel = path.relative_to(root)
        if path.is_dir() and path.name in _JUNK_DIRS and (len(rel.parts) >= 2 or path.name == "__pycache__"):
            shutil.rmtree(path)
        elif path.is_file() and _is_junk_file(path):
            path.unlink()


def _is_junk_file(path: Path) -> bool:
    if path.suffix in {".pyc", ".pyo"} or path.name.endswith(".egg-link"):
        return True
    return path.parent.name.endswith(".dist-info") and path.name in _JUNK_DIST_INFO


def make_zip(src: Path, out: Path) -> None:
    """Zip the *contents* of ``src`` into ``out`` reproducibly (sorted names, fixed dates, modes kept)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(src).as_posix(), date_time=_ZIP_EPOCH)
            mode = path.stat().st_mode
            # Executables (the extension) stay executable; everything else is plain rw-r--r--.
            perm = 0o755 if mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | perm) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that Lambda honours the mode bits
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    os.replace(tmp, out)


def sizes(zip_path: Path) -> str:
    """``zipped=<bytes> unzipped=<bytes> files=<n>`` for a zip."""
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        unzipped = sum(i.file_size for i in infos)
    return f"{zip_path.name}: zipped={zip_path.stat().st_size} B unzipped={unzipped} B files={len(infos)}"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "strip":
        strip(Path(argv[1]))
    elif len(argv) == 3 and argv[0] == "zip":
        make_zip(Path(argv[1]), Path(argv[2]))
    elif len(argv) == 2 and argv[0] == "sizes":
        print(sizes(Path(argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
