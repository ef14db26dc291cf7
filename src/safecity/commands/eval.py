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
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Face verification accuracy on LFW (every pair counted; no-face images are errors)."""
    from safecity.governance.accuracy import save_evaluation
    from safecity.identity.lfw import evaluate_lfw

    threshold = state.config().matcher.threshold
    report = evaluate_lfw(
        pairs, images, train, roc, progress=not as_json, operating_thresholds=(threshold,)
    )
    saved = save_evaluation(report.to_dict())  # the DPIA's accuracy section reads it
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.format())
        out.print(f"saved for the DPIA: {saved}")
