"""``safecity bench …``: speed benchmarks that print figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from safecity.commands.common import err, out, state

app = typer.Typer(help="Speed benchmarks that print figures.", no_args_is_help=True)


@app.command("audit")
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


@app.command("retention")
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


@app.command("api")
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


@app.command("match")
def bench_match_cmd(
    gallery: Annotated[
        int, typer.Option(min=1, help="templates in the gallery (real LFW + random fill)")
    ] = 100_000,
    embedder: Annotated[
        str, typer.Option(help="dlib (128 values) or fused (dlib+faceres, 1152 values)")
    ] = "dlib",
    probes: Annotated[int, typer.Option(min=1, help="probes searched, one at a time")] = 500,
    exact: Annotated[
        bool | None,
        typer.Option(
            "--exact/--no-exact",
            help="also measure exact search (default: when the chosen index is approximate "
            "and a second copy of the gallery fits in 2 GiB)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Gallery search at a size: build time, memory, ms per probe, recall@1 against exact."""
    from safecity.bench import bench_match

    r = bench_match(gallery, embedder, probes, exact=exact)
    if as_json:
        print(json.dumps(r))
        return
    table = Table("index", "build s", "MB", "RSS+MB", "p50 ms", "p95 ms", "recall@1")
    for row in r["indexes"]:
        table.add_row(
            row["index"],
            f"{row['build_s']:.1f}",
            f"{row['index_bytes'] / 1e6:.0f}",
            f"{row['rss_growth_bytes'] / 1e6:.0f}",
            f"{row['median_ms']:.3f}",
            f"{row['p95_ms']:.3f}",
            f"{row['recall_at_1']:.3f}",
        )
    out.print(table)
    out.print(
        f"{r['gallery']:,} templates of {r['embedder']} ({r['dim']} values; "
        f"{r['real_templates']:,} real LFW, the rest random unit vectors; "
        f"{r['gallery_bytes'] / 1e9:.2f} GB as float32), {r['probes']} probes "
        f"({r['mated_probes']} of enrolled people); chosen index: {r['chosen']} "
        f"(exact up to {r['flat_max']:,} templates)"
    )
    out.print(r["machine"])


@app.command("components")
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


@app.command("decode")
def bench_decode_cmd(
    fps: Annotated[float, typer.Option(min=0.1, help="analysis rate the cameras sample at")] = 5.0,
    rounds: Annotated[int, typer.Option(min=1, help="interleaved rounds per mode")] = 5,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decoding with and without skipping frames (decode.skip), on the sample clips."""
    from safecity.bench import _media
    from safecity.video.bench_decode import bench_decode

    clips = [_media("arcade-crowd-1080p.mp4"), _media("pedestrians-768x576.avi")]
    r = bench_decode(clips, fps, rounds)
    if as_json:
        print(json.dumps(r))
        return
    table = Table("clip", "skip", "decoded", "delivered", "ms/delivered", "CPU s/video s")
    for clip in r["clips"]:
        for mode in clip["modes"]:
            table.add_row(
                clip["clip"],
                mode["skip"],
                str(mode["decoded"]),
                str(mode["delivered"]),
                f"{mode['ms_per_delivered']:.2f}",
                f"{mode['cpu_s_per_video_s']:.3f}",
            )
    out.print(table)
    for clip in r["clips"]:
        out.print(
            f"{clip['clip']} ({clip['codec']} {clip['size']}, {clip['stream_fps']:g} fps) read "
            f"at {r['fps']:g} fps: auto = {clip['auto']}; old/new time "
            f"{clip['time_ratio']:.2f}x, CPU {clip['cpu_ratio']:.2f}x (medians of {r['rounds']})"
        )


@app.command("detector")
def bench_detector_cmd(
    repeats: Annotated[int, typer.Option(min=1, help="timed passes over the frames")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Object detector variants per clip: ms per frame, ratio and person recall against
    the float model on the whole square input, measured in the same run."""
    from safecity.vision.detector_bench import bench_detector

    result = bench_detector(state.config(), repeats=repeats)
    if as_json:
        print(json.dumps(result))
        return
    table = Table("clip", "variant", "input", "median ms", "ratio", "recall", "extra")
    for clip in result["clips"]:
        for i, v in enumerate(clip["variants"]):
            table.add_row(
                f"{Path(clip['clip']).stem}, {clip['frames']} frames" if i == 0 else "",
                v["variant"],
                v["input"],
                f"{v['median_ms']:.1f}",
                f"{v['ratio']:.2f}",
                f"{v['recall']:.3f} ({v['matched']}/{v['people']})",
                str(v["extra"]),
            )
    out.print(table)
    out.print(result["machine"])


@app.command("pipeline")
def bench_pipeline_cmd(
    source: Annotated[
        Path | None, typer.Option(help="video file to loop (default: the pedestrians clip)")
    ] = None,
    cameras: Annotated[
        int, typer.Option(min=1, help="live-paced cameras on this worker (not with --find-max)")
    ] = 1,
    fps: Annotated[float, typer.Option(min=0.1, help="frames a second each camera sends")] = 5.0,
    seconds: Annotated[float, typer.Option(min=1, help="measured seconds (per N tried)")] = 20.0,
    warmup: Annotated[float, typer.Option(min=0, help="seconds run before measuring")] = 3.0,
    find_max: Annotated[
        bool, typer.Option("--find-max", help="find the most cameras whose p95 lag stays < 1 s")
    ] = False,
    max_cameras: Annotated[int, typer.Option(min=1, help="--find-max tries no more")] = 64,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="run the cameras on a Ray cluster (local | auto | ADDRESS), spread over its "
            "workers as 'run --cluster' does; events go to a scratch SQLite file here",
        ),
    ] = None,
    watched: Annotated[
        bool,
        typer.Option(
            "--watched",
            help="a watchlist (of nobody) applies to every camera: faces are searched and "
            "embedded as on a watched camera (not with --cluster)",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Live cameras on one worker: analysed fps, drops, lags to analysis and to the stored
    event per camera; CPU and RSS per worker. The file loops at its own rate and frames
    the analyser cannot take are dropped, as a live camera's would be."""

    config = state.config()  # a bad config fails before any cluster is joined

    def run(on_cluster: bool = False) -> None:
        _bench_pipeline(
            config,
            source,
            cameras,
            fps,
            seconds,
            warmup,
            find_max,
            max_cameras,
            as_json,
            on_cluster=on_cluster,
            watched=watched,
        )

    if cluster is None:
        run()
        return
    from safecity.runtime.cluster import connect, disconnect

    connect(cluster)
    try:
        run(on_cluster=True)
    finally:
        disconnect()


def _bench_pipeline(
    config,
    source: Path | None,
    cameras: int,
    fps: float,
    seconds: float,
    warmup: float,
    find_max: bool,
    max_cameras: int,
    as_json: bool,
    on_cluster: bool = False,
    watched: bool = False,
) -> None:
    from safecity.runtime import bench_pipeline as bench

    if find_max:
        step_line = None if as_json else _print_step
        result = bench.find_max(
            config,
            source,
            fps,
            seconds,
            warmup_s=warmup,
            max_cameras=max_cameras,
            on_step=step_line,
            cluster=on_cluster,
            watched=watched,
        )
        if as_json:
            print(json.dumps(result))
            return
        table = Table("cameras", "held", "p95 lag s", "slowest fps", "dropped", "CPU", "RSS MB")
        for step in result["steps"]:
            table.add_row(
                str(step["cameras"]),
                "yes" if step["held"] else "no",
                _num(step["worst_lag_p95_s"], 2),
                _num(step["min_analysed_fps"], 1),
                str(sum(c["dropped"] for c in step["camera_stats"])),
                _cpu(step["workers"]),
                _num(max(w["rss_mb"] or 0 for w in step["workers"]), 0),
            )
        out.print(table)
        ceiling = " (the most tried: --max-cameras)" if result["ceiling_reached"] else ""
        out.print(
            f"largest N at {result['fps_target']:g} fps with every camera's p95 lag under "
            f"{bench.MAX_LAG_S:g} s: {result['largest']}{ceiling}; source {result['source']}"
            + ("; every camera watched" if watched else "; no camera watched")
        )
        out.print(result["machine"])
        return
    result = bench.bench_pipeline(
        config, source, cameras, fps, seconds, warmup_s=warmup, cluster=on_cluster, watched=watched
    )
    if as_json:
        print(json.dumps(result))
        return
    columns = ("camera", "state", "fps", "dropped", "lag p50", "lag p95", "event p50", "event p95")
    table = Table(*columns, "events")
    for c in result["camera_stats"]:
        table.add_row(
            c["camera"],
            c["state"],
            _num(c["analysed_fps"], 1),
            str(c["dropped"]),
            _num(c["lag_p50_s"], 2),
            _num(c["lag_p95_s"], 2),
            _num(c["event_lag_p50_s"], 2),
            _num(c["event_lag_p95_s"], 2),
            str(c["events"]),
        )
    out.print(table)
    workers = Table("worker", "cameras", "CPU", "RSS MB", "peak RSS MB")
    for w in result["workers"]:
        workers.add_row(
            w["worker"],
            str(len(w["cameras"])),
            _cpu([w]),
            _num(w["rss_mb"], 0),
            _num(w["peak_rss_mb"], 0),
        )
    out.print(workers)
    out.print(
        f"{result['cameras']} camera(s) at {result['fps_target']:g} fps for "
        f"{result['seconds']:g} s (lags in seconds): "
        + ("held" if result["held"] else "did not hold")
        + f" (worst p95 lag {_num(result['worst_lag_p95_s'], 2)} s, "
        f"slowest {_num(result['min_analysed_fps'], 1)} fps)"
    )
    out.print(result["machine"])


def _print_step(step: dict) -> None:
    """One line per N tried, as --find-max goes (a search takes minutes)."""
    err.print(
        f"{step['cameras']} camera(s): {'held' if step['held'] else 'did not hold'} "
        f"(worst p95 lag {_num(step['worst_lag_p95_s'], 2)} s, "
        f"slowest {_num(step['min_analysed_fps'], 1)} fps)"
    )


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cpu(workers: list[dict]) -> str:
    """CPU of the workers in % of one core (200 % is two cores busy)."""
    return " ".join(f"{w['cpu_cores'] * 100:.0f} %" for w in workers)
