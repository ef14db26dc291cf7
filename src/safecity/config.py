"""One pydantic model of the YAML configuration: the single source of truth.

Every stage takes its own section (``config.detector``, ``config.faces`` …) so a
stage never reads settings it does not own. ``safecity run --config FILE`` loads
it with :func:`load_config`; ``safecity analyze`` builds one from defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from safecity.errors import ConfigError
from safecity.vision.coco import LABEL_TO_ID


def data_home() -> Path:
    """Where safecity keeps its database and media by default (``SAFECITY_HOME``)."""
    return Path(os.environ.get("SAFECITY_HOME", Path.home() / ".local/share/safecity"))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MotionConfig(_Section):
    enabled: bool = True
    width: int = Field(160, ge=32, description="grey frame width the difference is taken on")
    pixel_threshold: int = Field(18, ge=1, le=255, description="grey-level change that counts")
    min_fraction: float = Field(
        0.0005, ge=0, le=1, description="share of changed pixels below which nothing moved"
    )
    keepalive_s: float = Field(
        2.0, ge=0, description="run the detector at least this often even without motion"
    )
    background_rate: float = Field(
        0.05, gt=0, le=1, description="how fast still things blend into the background"
    )
    track_min_fps: float = Field(
        1.0,
        ge=0,
        description="while anything is tracked, analyse at least this many frames a second, "
        "motion or not (a person who stands still and turns his head); 0: only on motion",
    )


#: Track ``threshold`` of a label whose filter gives none. Measured on the pedestrians
#: clip: a traffic cone read as "person" for 2-3 s at a time has median scores
#: 0.44-0.46 (never above 0.49); real people who barely move score 0.67 (the seated
#: woman) and walkers 0.54-0.80. Vehicles get none: the parked van of that clip is a
#: real van at a median of 0.46, so a score cannot tell parked from false there.
DEFAULT_TRACK_THRESHOLDS: dict[str, float] = {"person": 0.55}


class ObjectFilter(_Section):
    """Limits for one label (``detector.filters.<label>``), as Frigate's object filters."""

    min_area: float = Field(0, ge=0, description="smallest box, in frame pixels (w x h)")
    max_area: float | None = Field(None, gt=0, description="largest box, in frame pixels")
    min_ratio: float = Field(0, ge=0, description="smallest box width / height")
    max_ratio: float | None = Field(None, gt=0, description="largest box width / height")
    min_score: float | None = Field(
        None, ge=0, le=1, description="per detection; default per_class_min_score, then min_score"
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="median score a track that never moved must reach to become an event "
        "(default 0.55 for person, 0 otherwise; 1 drops every still track of the label)",
    )
    still_fraction: float = Field(
        0.1,
        gt=0,
        description="a track whose centre moves less than this share of its "
        "box diagonal never moved",
    )
    still_min_s: float = Field(
        1.0, ge=0, description="a track seen for less time than this is never judged still"
    )


class DetectorConfig(_Section):
    kind: Literal["nanodet", "centernet", "yolo"] = "nanodet"
    model_path: Path | None = Field(None, description="own ONNX file; default: installed model")
    min_score: float = Field(0.35, ge=0, le=1)
    per_class_min_score: dict[str, float] = Field(default_factory=dict)
    classes: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck"],
        description="COCO labels kept; empty keeps all 80",
    )
    nms_iou: float = Field(0.5, gt=0, le=1)
    merge_classes: list[list[str]] = Field(
        default_factory=lambda: [["car", "truck", "bus"]],
        description="classes suppressed together by NMS, so one van is not both car and truck",
    )
    threads: int = Field(1, ge=1)
    precision: Literal["float", "int8"] = Field(
        "int8",
        description="nanodet: int8 weights (nanodet-int8, the default: 2-3x faster, "
        "person recall 98-99 % of the float model's) or the float model (nanodet); "
        "`safecity bench detector` measures both",
    )
    trim_padding: bool = Field(
        True,
        description="nanodet int8: cut the letterbox padding off the input in whole "
        "32-px strides (416x352 for 4:3, 416x288 for 16:9)",
    )
    filters: dict[str, ObjectFilter] = Field(
        default_factory=dict, description="per-label box, score and still-track limits"
    )

    def filter_for(self, label: str) -> ObjectFilter:
        """The label's filter with its defaults filled in (threshold, min_score)."""
        f = self.filters.get(label) or ObjectFilter()
        update: dict[str, float] = {}
        if f.threshold is None:
            update["threshold"] = DEFAULT_TRACK_THRESHOLDS.get(label, 0.0)
        if f.min_score is None:
            update["min_score"] = self.per_class_min_score.get(label, self.min_score)
        return f.model_copy(update=update) if update else f

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in LABEL_TO_ID]
        if unknown:
            raise ValueError(f"unknown COCO class(es): {', '.join(unknown)}")
        return value

    @field_validator("merge_classes")
    @classmethod
    def _known_merge_classes(cls, value: list[list[str]]) -> list[list[str]]:
        unknown = [c for group in value for c in group if c not in LABEL_TO_ID]
        if unknown:
            raise ValueError(f"unknown COCO class(es): {', '.join(unknown)}")
        return value

    @field_validator("per_class_min_score", "filters")
    @classmethod
    def _known_score_classes(cls, value: dict) -> dict:
        unknown = [k for k in value if k not in LABEL_TO_ID]
        if unknown:
            raise ValueError(f"unknown COCO class(es): {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _one_min_score_per_label(self) -> DetectorConfig:
        both = [
            label
            for label, f in self.filters.items()
            if f.min_score is not None
            and label in self.per_class_min_score
            and f.min_score != self.per_class_min_score[label]
        ]
        if both:
            raise ValueError(
                "per_class_min_score and filters.<label>.min_score disagree for "
                f"{', '.join(both)}: keep one"
            )
        return self


class TrackerConfig(_Section):
    high_score: float = Field(0.5, ge=0, le=1, description="first-round association score")
    low_score: float = Field(0.2, ge=0, le=1, description="second-round (ByteTrack) score")
    new_track_score: float = Field(0.45, ge=0, le=1)
    match_iou: float = Field(0.2, gt=0, le=1, description="minimum IoU to associate")
    lost_after_s: float = Field(2.0, gt=0, description="a track unseen this long ends")
    min_hits: int = Field(3, ge=1, description="detections before a track becomes an event")
    gate_heights: float = Field(
        0.5,
        ge=0,
        description="a detection that does not overlap a track's predicted box may still "
        "continue it when its centre is this many box heights from the predicted or the last "
        "seen centre (0: IoU only)",
    )
    gate_heights_per_s: float = Field(
        1.0, ge=0, description="how much that gate widens per second the track was not seen"
    )
    # Measured on the pedestrians clip: 1 % of same-person pairs 1 s apart fall under
    # 0.55, and 36 % of pairs of different people within 1.5 heights of each other.
    appearance_min: float = Field(
        0.55,
        ge=0,
        le=1,
        description="colour similarity (torso and legs, 0..1) under which a detection never "
        "continues a track, when the tracker is given the frame (0: appearance not used)",
    )


class FacesConfig(_Section):
    enabled: bool = True
    kind: Literal["yunet", "scrfd"] = "yunet"
    model_path: Path | None = Field(None, description="own SCRFD ONNX file")
    min_score: float = Field(0.6, ge=0, le=1)
    min_size: int = Field(24, ge=8, description="smallest face width in pixels to consider")
    upper_fraction: float = Field(0.5, gt=0, le=1, description="top share of a person box searched")
    min_quality: float = Field(0.3, ge=0, le=1, description="faces below are not embedded")
    max_side: int = Field(
        1920, ge=160, description="whole-image detection shrinks larger images to this long side"
    )
    full_frame: bool = Field(
        True,
        description="search every face found in the analysed frame, also of people the object "
        "detector missed (tracked as face-only tracks)",
    )
    full_frame_side: int = Field(
        960,
        ge=160,
        description="long side the whole frame is shrunk to for finding faces outside person "
        "boxes (faces found there are refined at full resolution)",
    )
    # Measured (issue 13, 5 fps, interleaved): the whole-frame search was 54 of 60 ms
    # a frame on the pedestrians clip and 67 of 105 on the 1080p arcade clip; once a
    # second it cut the faces stage's median to 0.16x and 0.40x, with the same faces
    # on person tracks and as many face-only tracks (the seated gif's man: more of
    # his faces, found at full resolution around his last one).
    full_frame_every_s: float = Field(
        1.0,
        ge=0,
        description="seconds between whole-frame face searches (0: every analysed frame); in "
        "between, only the regions around face-only tracks' faces are searched",
    )
    # Measured (issue 13, 5 fps): on the pedestrians clip the moving parts outside the
    # people tracked span 0.4 of the frame at a median search, on the seated GIF 0.3;
    # on the 1080p arcade crowd nearly all of it (those searches stay whole).
    full_frame_still_every_s: float = Field(
        10.0,
        ge=0,
        description="with the motion gate on, the once-a-period whole-frame face search "
        "looks only where something moved outside the people tracked (a face not seen "
        "yet can only be there); the whole frame is still searched at least this often, "
        "for someone who has not moved since (0: always the whole frame)",
    )
    track_best_k: int = Field(
        5, ge=1, le=20, description="a track is identified from up to this many of its best faces"
    )


class EmbedderConfig(_Section):
    # dlib: dlib's ResNet (128-d); faceres: HSE FaceRes (1024-d); fused: both, scored
    # w·z_dlib + (1 − w)·z_faceres with constants fitted on LFW pairsDevTrain
    # (safecity/identity/calibration/); arcface: a user's own ONNX (model_path).
    kind: Literal["dlib", "faceres", "fused", "arcface"] = "dlib"
    model_path: Path | None = Field(None, description="own ArcFace ONNX file")
    threads: int = Field(1, ge=1, description="ONNX Runtime threads per embedding network")


class MatcherConfig(_Section):
    # None: the configured embedder's calibrated default, resolved in one place,
    # safecity.identity.matcher.matcher_settings. dlib's is cosine 0.925: measured on
    # LFW pairsDevTrain.txt (dlib ResNet, YuNet + dlib 5-point alignment,
    # safecity.identity.lfw), FAR <= 1e-3 there starts at cosine 0.923 (TAR 95.3 %);
    # rounded up to 0.925 (1 of 1100 impostor pairs accepted, TAR 94.1 %). The
    # accuracy-optimal 0.907 (98.95 %) lets 1.1 % of impostors through. dlib's
    # "euclidean < 0.6" is ~0.91 in cosine: its raw vectors have norm ~1.4, not 1.
    # faceres and fused follow the same rule (calibration file); the fused score is
    # not a cosine (it counts impostor standard deviations), hence no upper bound of 1.
    threshold: float | None = Field(
        None,
        ge=-1,
        description="score at or above which a face matches (cosine for dlib, faceres and "
        "arcface; the fused score for fused); unset: the embedder's calibrated default",
    )
    margin: float | None = Field(
        None,
        ge=0,
        description="required lead over the next person, in the same units; unset: the "
        "embedder's calibrated default (dlib 0.02)",
    )
    # Instead of threshold: a target open-set false-alarm rate, turned into the score
    # at which the configured embedder reached it in the saved safecity eval identify.
    fpir: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="target FPIR (share of searches for people on no list that raise an "
        "alarm, e.g. 0.01); the threshold is read from the saved 'safecity eval identify' "
        "of the configured embedder, for a list the size of that evaluation's gallery; "
        "give this or threshold, not both",
    )


class DecodeConfig(_Section):
    skip: Literal["auto", "nonref", "nonkey", "none"] = Field(
        "auto",
        description="frames the decoder may skip: nonref (frames no other frame refers to, "
        "e.g. B frames), nonkey (keyframes only), none; auto: nonref for H.264/HEVC sent at "
        "3 or more times the camera's fps",
    )
    detect_tolerance_s: float = Field(
        0.15,
        gt=0,
        description="a detect_url frame pairs with the main frame nearest in time, at most "
        "this many seconds apart",
    )


class CameraConfig(_Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=1, description="file path, rtsp://, http(s):// (MJPEG/HLS)")
    fps: float | None = Field(None, gt=0, description="analyse at most this many frames/s")
    location: str = ""
    enabled: bool = True
    loop: bool = False
    keyframes_only: bool = Field(False, description="decode only keyframes (cheap, low rate)")
    detect_url: str | None = Field(
        None,
        min_length=1,
        description="a lower-resolution substream of the same camera for the object detector; "
        "faces and snapshots still come from url",
    )
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    timeout_s: float = Field(5.0, gt=0, description="network open and read timeout")
    live_pace: bool = Field(
        False,
        description="play a file at its own frame rate and drop the frames the analyser "
        "cannot take, as a live camera would (benchmarks, rehearsals)",
    )
    read_plates: bool = Field(
        True, description="read the licence plates of vehicles (plates.enabled must be on too)"
    )


class StoreConfig(_Section):
    url: str = Field(default_factory=lambda: f"sqlite:///{data_home() / 'safecity.db'}")
    media_dir: Path = Field(default_factory=lambda: data_home() / "media")
    save_annotated_video: bool = False


class ReconnectConfig(_Section):
    initial_s: float = Field(1.0, gt=0)
    max_s: float = Field(30.0, gt=0)
    max_attempts: int | None = Field(None, ge=1, description="None: retry forever")


class ReviewConfig(_Section):
    required_confirmations: int = Field(
        2, ge=2, description="different reviewers who must confirm a match (four eyes or more)"
    )


class AuthorisationPolicy(_Section):
    emergency_deadline_h: float = Field(
        24.0, gt=0, description="hours within which an emergency use must file its request"
    )
    emergency_decision_h: float = Field(
        72.0,
        gt=0,
        description="hours after the filing deadline an emergency use may await approval "
        "before its results are deleted",
    )
    template_grace_days: float = Field(
        7.0, ge=0, description="days after an authorisation ends before its templates are deleted"
    )
    default_evidence_days: int = Field(
        90, ge=1, description="days confirmed-match evidence is kept when a proposal gives none"
    )


class RetentionConfig(_Section):
    snapshots_h: float = Field(72.0, gt=0, description="snapshots and footage, in hours")
    events_days: float = Field(30.0, gt=0, description="event rows, in days")
    # Logs of such systems must be kept at least six months (EU AI Act Art. 19(1),
    # 26(6)); a shorter setting would let a config file erase the trail.
    audit_days: float | None = Field(
        1825.0, ge=183, description="audit trail, in days, at least 183 (None: keep for ever)"
    )
    interval_s: float = Field(3600.0, gt=0, description="how often safecity run enforces retention")
    orphan_grace_s: float = Field(
        3600.0, ge=0, description="age before a media file that no row refers to is deleted"
    )


class PlatesConfig(_Section):
    """Licence plates: read on vehicles, stored with their events, searched on record."""

    enabled: bool = True
    countries: list[str] = Field(
        default_factory=lambda: ["SK", "CZ", "PL", "DE", "FR", "IT", "ES", "GB", "HU"],
        description="plate formats to read (safecity.vision.plate_formats), the camera's own "
        "country first: on a tie its format wins",
    )
    det_side: int = Field(
        480,
        ge=160,
        description="a vehicle crop is scaled so its shorter side is this for the text "
        "detector (eval plates on plates/eu: 736 98.1 % exact 376 ms, 480 96.3 % 155 ms, "
        "320 96.3 % 78 ms a crop)",
    )
    max_reads: int = Field(3, ge=1, description="reads voted per vehicle track")
    read_interval_s: float = Field(0.5, ge=0, description="at least this between two reads")
    min_vehicle_width: int = Field(
        120, ge=1, description="pixels; a narrower vehicle's plate is too small to read"
    )
    match_max_edits: int = Field(
        0,
        ge=0,
        le=1,
        description="plate watchlists: a read matches a listed plate when the same (0), or "
        "also one letter or digit changed, added or left out (1: more false hits, each a "
        "candidate reviewers must reject)",
    )
    retention_days: float | None = Field(
        None,
        gt=0,
        description="days a plate read of a vehicle that matched nothing is kept (None: as "
        "long as its event, retention.events_days; a longer value changes nothing)",
    )

    @field_validator("countries")
    @classmethod
    def _known_countries(cls, countries: list[str]) -> list[str]:
        from safecity.vision.plate_formats import COUNTRIES

        codes = [c.strip().upper() for c in countries]
        unknown = [c for c in codes if c not in COUNTRIES]
        if unknown:
            known = ", ".join(COUNTRIES)
            raise ValueError(f"no plate formats for {', '.join(unknown)}; known: {known}")
        return codes


class AuditConfig(_Section):
    key_path: Path = Field(
        default_factory=lambda: data_home() / "audit" / "head-signing-key.pem",
        description="Ed25519 private key that signs the chain head (created on first use)",
    )
    heads_path: Path = Field(
        default_factory=lambda: data_home() / "audit" / "signed-heads.jsonl",
        description="append-only file of signed chain heads",
    )
    sign_interval_s: float = Field(
        600.0, gt=0, description="how often safecity run signs the chain head"
    )


class ApiConfig(_Section):
    """``safecity serve``: the console and REST API."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: int = Field(8080, ge=1, le=65535)
    secure_cookies: bool = Field(
        False, description="mark session cookies Secure (set when served over HTTPS)"
    )
    session_idle_minutes: float = Field(
        60.0, gt=0, description="a console session ends after this long without a request"
    )
    session_max_hours: float = Field(
        12.0, gt=0, description="and at the latest this long after login"
    )
    login_max_failures: int = Field(
        5, ge=1, description="failed logins for a user name from one address before it locks"
    )
    login_user_max_failures: int = Field(
        50,
        ge=1,
        description="failed logins for a user name from all addresses before every try for it "
        "is slowed (never refused)",
    )
    login_ip_max_failures: int = Field(
        20, ge=1, description="failed logins from one address within the window before it locks"
    )
    login_window_minutes: float = Field(15.0, gt=0)
    max_upload_mb: float = Field(10.0, gt=0, le=100, description="largest photo accepted")
    live_fps: float = Field(4.0, gt=0, le=25, description="frame rate of the live view")
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="reverse proxies whose X-Forwarded-For names the client (for limits, audit)",
    )


class OutboxConfig(_Section):
    """Finished events wait here, on the analysing machine's disk, until the database has them."""

    dir: Path = Field(
        default_factory=lambda: data_home() / "outbox",
        description="folder of the durable outbox (one subfolder per worker; owner-only)",
    )
    max_events: int = Field(
        100_000, ge=1, description="events the outbox may hold before it refuses more"
    )
    max_mb: float = Field(2048.0, gt=0, description="megabytes the outbox may hold")
    drain_on_stop_s: float = Field(
        30.0,
        ge=0,
        description="on stop, how long to keep trying to store what the outbox holds "
        "(the rest is stored at the next start)",
    )


class ClusterConfig(_Section):
    """``safecity run --cluster``: cameras spread over the nodes of a Ray cluster."""

    cameras_per_worker: int = Field(
        4, ge=1, description="cameras one worker process hosts (models load once per process)"
    )
    cpus_per_camera: float = Field(
        0.5, gt=0, description="Ray CPUs a camera reserves; a node's CPUs bound its cameras"
    )
    check_interval_s: float = Field(
        1.0, gt=0, description="how often the coordinator checks workers and nodes"
    )


class MqttSinkConfig(_Section):
    """An MQTT broker that alerts go to (paho-mqtt)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls: bool = Field(False, description="connect over TLS (port 8883 usually)")
    ca_file: Path | None = Field(None, description="CA certificate to trust (TLS)")
    topic_prefix: str = Field("safecity", min_length=1)
    qos: int = Field(1, ge=0, le=2)
    authorisations: list[int] = Field(
        default_factory=list,
        description="confirmed matches of these authorisations may carry identity to this sink",
    )


class WebhookSinkConfig(_Section):
    """An HTTP(S) endpoint that alerts are POSTed to as JSON, signed with HMAC-SHA256."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(min_length=1, description="http(s)://… receiving a JSON POST per alert")
    secret: str = Field(min_length=16, description="shared secret of the HMAC-SHA256 signature")
    timeout_s: float = Field(5.0, gt=0)
    authorisations: list[int] = Field(
        default_factory=list,
        description="confirmed matches of these authorisations may carry identity to this sink",
    )


class AlertsConfig(_Section):
    """Where events, review requests and confirmed matches are announced."""

    mqtt: list[MqttSinkConfig] = Field(default_factory=list)
    webhooks: list[WebhookSinkConfig] = Field(default_factory=list)
    public_url: str = Field(
        "", description="the API's address as receivers reach it, for snapshot links"
    )
    retry_initial_s: float = Field(0.5, gt=0)
    retry_max_s: float = Field(30.0, gt=0)


class MetricsConfig(_Section):
    """Prometheus metrics of the analysing processes (the API serves its own at /metrics)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="address of the metrics port (localhost only)")
    port: int = Field(9464, ge=0, le=65535, description="0: any free port")


class SafecityConfig(_Section):
    cameras: list[CameraConfig] = Field(default_factory=list)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    matcher: MatcherConfig = Field(default_factory=MatcherConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    authorisations: AuthorisationPolicy = Field(default_factory=AuthorisationPolicy)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    plates: PlatesConfig = Field(default_factory=PlatesConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @field_validator("cameras")
    @classmethod
    def _unique_names(cls, value: list[CameraConfig]) -> list[CameraConfig]:
        names = [c.name for c in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(dupes)}")
        return value


def load_config(path: Path) -> SafecityConfig:
    """Read and validate a YAML config; every problem becomes one ConfigError line."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    try:
        return SafecityConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from None
