"""Deterministic .tar.gz and .zip of a release folder: sorted entries, fixed times, owners and modes,
no name or time in the gzip header, fixed compression levels, so the same files give the same archive bytes."""
from __future__ import annotations

import gzip
import tarfile
import zipfile
from pathlib import Path

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
GZIP_LEVEL = 6  # zlib's default, as the zip's deflate: GzipFile's own default 9 took 2.5 times as long for 1% less


def _files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def write_tar_gz(root: Path, top: str, target: Path) -> None:
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                  compresslevel=GZIP_LEVEL) as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(root):
            info = tarfile.TarInfo(f"{top}/{path.relative_to(root).as_posix()}")
            info.size, info.mtime, info.mode = path.stat().st_size, 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def write_zip(root: Path, top: str, target: Path) -> None:
    with zipfile.ZipFile(target, "w") as archive:
        for path in _files(root):
            info = zipfile.ZipInfo(f"{top}/{path.relative_to(root).as_posix()}", date_time=ZIP_EPOCH)
            info.compress_type, info.create_system, info.external_attr = zipfile.ZIP_DEFLATED, 3, 0o644 << 16
            with open(path, "rb") as source, archive.open(info, "w") as sink:
                for block in iter(lambda: source.read(1 << 20), b""):
                    sink.write(block)


def write_archives(root: Path, top: str, folder: Path) -> list[Path]:
    """`<top>.tar.gz` and `<top>.zip` of `root` in `folder`, written side by side (zlib releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    targets = [folder / f"{top}.tar.gz", folder / f"{top}.zip"]
    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(write, root, top, target) for write, target in zip((write_tar_gz, write_zip), targets)]:
            job.result()
    return targets
