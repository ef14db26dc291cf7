"""Sample media fetched from a registry package, for the demo.

Debian's ``opencv-doc`` package ships OpenCV's ``vtest.avi`` (pedestrians on a
campus, 768×576, 795 frames). ``apt-get download`` fetches the .deb without
installing it; the one file is streamed out of it with ``dpkg-deb``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from safecity.errors import SafecityError


@dataclass(frozen=True)
class Sample:
    name: str
    package: str
    member: str
    sha256: str


SAMPLES = {
    "vtest": Sample(
        name="vtest.avi",
        package="opencv-doc",
        member="./usr/share/doc/opencv-doc/examples/data/vtest.avi",
        sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    )
}


def samples_dir() -> Path:
    return Path(os.environ.get("SAFECITY_SAMPLES", Path.home() / ".cache/safecity/samples"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sample(key: str = "vtest") -> Path:
    """Return the cached sample, fetching it from its Debian package if needed."""
    sample = SAMPLES[key]
    target = samples_dir() / sample.name
    if target.exists() and sha256_of(target) == sample.sha256:
        return target
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SafecityError(f"cannot fetch the sample video: '{tool}' is not installed")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run(
            ["apt-get", "download", sample.package],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        debs = list(Path(tmp).glob("*.deb"))
        if done.returncode != 0 or not debs:
            reason = (done.stderr.strip().splitlines() or ["no package file"])[-1]
            raise SafecityError(
                f"cannot download Debian package {sample.package} ({reason}); "
                "run 'apt-get update' and check the network"
            )
        partial = Path(tmp) / sample.name
        _extract_member(debs[0], sample.member, partial)
        if sha256_of(partial) != sample.sha256:
            raise SafecityError(f"{sample.name} from {sample.package} failed its sha256 check")
        partial.replace(target)
    return target


def _extract_member(deb: Path, member: str, out: Path) -> None:
    # stderr is silenced: dpkg-deb reports a broken pipe once the file is found.
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    found = False
    with tarfile.open(fileobj=proc.stdout, mode="r|*") as archive:
        for info in archive:
            if info.name == member and info.isfile():
                source = archive.extractfile(info)
                assert source is not None
                with open(out, "wb") as handle:
                    shutil.copyfileobj(source, handle)
                found = True
                break
    proc.stdout.close()
    proc.wait()
    if not found:
        raise SafecityError(f"{member} is not in {deb.name}")
