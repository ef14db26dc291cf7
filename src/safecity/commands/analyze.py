"""``safecity analyze``: one video or stream; ``safecity demo``: the same on a sample."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from safecity.commands.common import jsonable, out, parse_time, state, stop_on_signals
from safecity.commands.events import events_table
from safecity.config import CameraConfig
from safecity.errors import SafecityError

log = logging.getLogger(__name__)


def analyze_cmd(
    source: Annotated[str, typer.Argument(help="video file, rtsp://, http(s):// URL")],
    camera: Annotated[
        str | None, typer.Option(help="camera name (default: from the file name)")
    ] = None,
    fps: Annotated[
        float | None, typer.Option(min=0.01, help="analyse at most this many frames/s")
    ] = None,
    annotated: Annotated[
        Path | None, typer.Option(help="write an annotated video here (faces pixelated)")
    ] = None,
    start_time: Annotated[
        str | None, typer.Option(help="wall-clock time of the first frame (default: now)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Analyse one video or stream and store its events."""
    start = parse_time(start_time, "--start-time")
    # No bar with --json (nor off a terminal): progress lines go to the log (-v).
    report, rows = _analyze(source, camera, fps, annotated, start, bar=False if as_json else None)
    if as_json:
        print(json.dumps(_report_dict(report, rows), default=str))
        return
    out.print(events_table(rows))
    _print_report(report)


def _analyze(
    source: str,
    camera: str | None,
    fps: float | None,
    annotated: Path | None,
    start,
    bar: bool | None = None,
):
    from safecity.governance.audit import record
    from safecity.pipeline import Stages
    from safecity.progress import Progress
    from safecity.runtime.local import CameraStats, HealthReporter, analyze_one
    from safecity.runtime.service import audited_gallery
    from safecity.store.queries import list_events
    from safecity.store.sink import StoreSink

    config = state.config()
    name = camera or _camera_name(source)
    cam = CameraConfig(name=name, url=source, fps=fps)
    store = state.store()
    sink = StoreSink(store)
    stages = Stages.load(config)
    stop = stop_on_signals()
    gallery = audited_gallery(store, config)
    stats = CameraStats(name, state="running")
    # The final figures go to the console's health page (once; errors only logged).
    health = HealthReporter(store, [stats])
    progress = Progress(name, _frame_count(source), "frame", log, bar=bar, counts=("events",))

    def on_frame(result) -> None:
        stats.record(result)
        progress.advance(position=result.frame.index + 1, events=len(result.ended))

    try:
        report = analyze_one(
            cam,
            config,
            stages,
            write=sink.write_many,
            matcher_for=gallery.matcher_for,
            plate_matcher_for=gallery.plate_matcher_for,
            annotated_video=annotated,
            start_time=start,
            on_frame=on_frame,
            stop=stop,
        )
        progress.close()  # its last line (off a terminal) before the table
    except SafecityError as exc:
        stats.state, stats.last_error = "failed", str(exc)
        health.report()
        raise
    finally:
        progress.close(finished=False)  # stopped or failed: no "done" line
        gallery.close()
    stats.state = "finished"  # frames were counted as they came (on_frame)
    stats.events = len(report.event_ids)
    health.report()
    # The operator supplies the camera name and the first frame's time, and they
    # decide which authorisations apply: both go on record.
    record(
        store,
        actor=state.actor(),
        action="analysis.run",
        object=f"camera:{name}",
        details={
            "source": source,
            "camera": name,
            "start_time_given": start.isoformat() if start else None,
            # Matched faces stay visible in it, for review: where it went is on record.
            "annotated_video": str(report.annotated_video) if report.annotated_video else None,
            "frames": report.frames_in,
            "events": len(report.event_ids),
        },
    )
    ids = report.event_ids
    rows = list_events(store, ids=ids, limit=max(1, len(ids))) if ids else []
    return report, rows


def _frame_count(source: str) -> int | None:
    """Frames in a file, from its header (for the progress total); None for a stream."""
    from safecity.video.source import is_network, probe

    if is_network(source):  # a live stream has no count; and no second connection for it
        return None
    try:
        return probe(source).frames or None
    except SafecityError:  # analyze_one reports it as it opens the source
        return None


def _camera_name(source: str) -> str:
    import re

    stem = Path(source.split("?")[0].rstrip("/")).stem or "camera"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "camera"


def _report_dict(report, rows) -> dict:
    return {
        "camera": report.camera,
        "source": report.source,
        "frames_in": report.frames_in,
        "frames_analysed": report.frames_analysed,
        "seconds": round(report.seconds, 2),
        "annotated_video": str(report.annotated_video) if report.annotated_video else None,
        "events": [jsonable(r) for r in rows],
    }


def _print_report(report) -> None:
    fps = report.frames_in / report.seconds if report.seconds else 0.0
    out.print(
        f"{report.camera}: {report.frames_in} frames ({report.frames_analysed} analysed) "
        f"in {report.seconds:.1f} s ({fps:.1f} frames/s); {len(report.event_ids)} events stored"
    )
    if report.annotated_video:
        out.print(f"annotated video: {report.annotated_video}")
    out.print(f"snapshots: {state.config().store.media_dir}")


def demo_cmd(
    annotated: Annotated[Path, typer.Option(help="annotated video path")] = Path(
        "demo-out/vtest-annotated.mp4"
    ),
) -> None:
    """The main job on the embedded default: models, sample video, analysis, table."""
    from safecity.models.install import install
    from safecity.samples import fetch_sample

    install(None, progress=True)
    video = fetch_sample("vtest")
    out.print(f"sample video: {video}")
    report, rows = _analyze(str(video), "vtest", None, annotated.resolve(), None)
    out.print(events_table(rows))
    _print_report(report)
    out.print(f"database: {state.config().store.url}")
    state.signer().sign(state.store())
    verified = state.signer().verify(state.store())
    out.print(verified.format(), markup=False, highlight=False)
    out.print(
        "see these events in the console: safecity user add NAME --role admin, "
        "then safecity serve (http://127.0.0.1:8080/)"
    )
