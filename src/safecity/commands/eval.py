"""``safecity eval …``: accuracy evaluation on public benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safecity.commands.common import out, state

app = typer.Typer(help="Accuracy evaluation on public benchmarks.", no_args_is_help=True)


@app.command("lfw")
def eval_lfw(
    pairs: Annotated[Path, typer.Option(help="pairs.txt (10 folds) or pairsDevTest.txt")],
    images: Annotated[Path, typer.Option(help="folder of Name/Name_NNNN.jpg")],
    train: Annotated[Path | None, typer.Option(help="pairsDevTrain.txt (dev format)")] = None,
    roc: Annotated[Path, typer.Option(help="ROC plot PNG")] = Path("lfw-roc.png"),
    cache: Annotated[
        Path | None,
        typer.Option(help="folder of embedding caches (<channel>.npz, reused and updated)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Face verification accuracy on LFW of dlib, FaceRes and both fused (every pair counted;
    no-face images are errors). The headline figures are the configured embedder's."""
    from safecity.governance.accuracy import save_evaluation
    from safecity.identity.lfw import EMBEDDERS, evaluate_lfw
    from safecity.identity.matcher import matcher_settings

    config = state.config()
    kind = config.embedder.kind
    if kind not in EMBEDDERS:
        from safecity.errors import ConfigError

        raise ConfigError(
            f"safecity eval lfw measures {', '.join(EMBEDDERS)}; the configured embedder is "
            f"'{kind}' (configure embedder.kind dlib, faceres or fused)"
        )
    threshold, _ = matcher_settings(config)
    report = evaluate_lfw(
        pairs,
        images,
        train,
        roc,
        progress=not as_json,
        operating_thresholds=(threshold,),
        embedder=kind,
        cache=cache,
    )
    saved = save_evaluation(report.to_dict())  # the DPIA's accuracy section reads it
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.format())
        out.print(f"saved for the DPIA: {saved}")


@app.command("fit-fusion")
def eval_fit_fusion(
    train: Annotated[Path, typer.Option(help="pairsDevTrain.txt (never the test pairs)")],
    images: Annotated[Path, typer.Option(help="folder of Name/Name_NNNN.jpg")],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="calibration JSON to write (default: print it)"),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="folder of embedding caches (<channel>.npz, reused and updated)"),
    ] = None,
) -> None:
    """Fit the dlib + FaceRes fusion (FaceRes mean, mirror averaging, z-statistics, weight,
    default thresholds) on LFW training pairs; the packaged calibration file is its output."""
    from safecity.identity.calibration import save_calibration
    from safecity.identity.lfw import fit_lfw_calibration

    calibration = fit_lfw_calibration(train, images, cache=cache, progress=True)
    if out_file is None:
        print(json.dumps(calibration.to_dict(), indent=1, sort_keys=True))
        return
    saved = save_calibration(calibration, out_file)
    w = calibration.weights
    out.print(
        f"{calibration.name}: w_dlib {w[0]:.2f}, w_faceres {w[1]:.2f}, FaceRes mirror "
        f"{'on' if calibration.faceres_flip else 'off'}; thresholds "
        + ", ".join(f"{k} {v:g}" for k, v in calibration.thresholds.items())
        + f"; written to {saved}"
    )


@app.command("identify")
def eval_identify(
    images: Annotated[Path, typer.Option(help="folder of <Name>/<image> files")],
    det_curve: Annotated[
        Path | None, typer.Option("--det-curve", help="write the DET curves to this PNG")
    ] = None,
    embedder: Annotated[
        list[str] | None,
        typer.Option(
            "--embedder",
            help="evaluate this embedder (repeatable; default: dlib, faceres and fused, "
            "those this installation has, and the configured one)",
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="folder of embedding caches (<embedder>.npz, keyed by path relative to "
            "--images; default /tmp/lfw-emb or $SAFECITY_EMBED_CACHE)"
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="embed every image afresh (needed when a cache holds other images "
            "under the same names)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Open-set 1:N identification: rank-1, and FNIR at FPIR 10 %, 1 %, 0.1 %, per embedder.

    Gallery: the first image (by file name) of each person with two or more;
    mated searches: their other images; non-mated searches: the persons with
    one image. Saved for the DPIA and for matcher.fpir.
    """
    from safecity.governance.accuracy import save_evaluation
    from safecity.identity.openset import DEFAULT_EMBEDDERS, embedder_specs, evaluate_identify
    from safecity.vision.embedder import embedder_name

    config = state.config()
    kinds = list(embedder or DEFAULT_EMBEDDERS)
    if not embedder and config.embedder.kind not in kinds:
        kinds.append(config.embedder.kind)
    specs, skipped = embedder_specs(
        kinds, images, progress=not as_json, cache_dir=cache, use_cache=not no_cache
    )
    if not specs:
        from safecity.errors import ConfigError

        raise ConfigError(
            "no embedder to evaluate: " + "; ".join(f"{k}: {why}" for k, why in skipped.items())
        )
    # Each embedder at its calibrated default threshold, and the configured one at the
    # threshold the matcher uses now.
    thresholds = {spec.name: _calibrated_threshold(spec.name) for spec in specs}
    configured = _configured_threshold(config)
    if configured is not None:
        mine = thresholds.setdefault(embedder_name(config.embedder), [])
        if all(abs(t - configured) > 1e-9 for t in mine):
            mine.append(configured)
    report = evaluate_identify(
        images, specs, thresholds=thresholds, det_png=det_curve, skipped=skipped
    )
    saved = save_evaluation(report.to_dict(scores=True), kind="identify")
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.format())
        out.print(f"saved for the DPIA and matcher.fpir: {saved}")


@app.command("plates")
def eval_plates(
    folder: Annotated[
        Path, typer.Option("--dir", help="photos with OpenALPR-style labels (NAME.txt)")
    ],
    country: Annotated[
        list[str] | None,
        typer.Option(help="plate formats to use, home country first (default: plates.countries)"),
    ] = None,
    det_side: Annotated[
        int | None,
        typer.Option(min=160, help="text detector's input side (default: plates.det_side)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Licence plate reading on labelled photos (each photo is one vehicle crop): share read
    exactly, character error rate, share where the plate was found, ms per crop (median)."""
    from safecity.vision.plate_eval import evaluate_plates
    from safecity.vision.plates import PlateReader

    plates = state.config().plates
    countries = country or plates.countries
    reader = PlateReader(countries=countries, det_side=det_side or plates.det_side)
    report = evaluate_plates(folder, countries, reader)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.format())


def _calibrated_threshold(embedder: str) -> list[float]:
    """The calibrated default threshold of ``embedder``, if it has one."""
    from safecity.errors import SafecityError
    from safecity.identity.calibration import load_calibration

    try:
        return [load_calibration().threshold(embedder)]
    except SafecityError:
        return []


def _configured_threshold(config) -> float | None:
    """The threshold the matcher uses now (set, or the embedder's calibrated default).

    None when it cannot be resolved yet: matcher.fpir before any identify
    evaluation is saved (this command is what saves one).
    """
    from safecity.errors import SafecityError
    from safecity.identity.matcher import matcher_settings

    try:
        return matcher_settings(config)[0]
    except SafecityError:
        return None
