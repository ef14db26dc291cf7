"""Licence plates: find the plate on a vehicle crop and read it, once or over a track.

RapidOCR's PP-OCR text detector finds the lines of text in the crop; the
recogniser (the same package's PP-OCR CTC model, run here so its character
probabilities can be used) reads each line of plate-like shape. Each read is
decoded against the plate formats of the configured countries
(:mod:`safecity.vision.plate_formats`) by a constrained CTC alignment: a letter
slot takes the most probable letter, a digit slot the most probable digit, and a
sticker or flag band read as an extra character is dropped when the format says
there is one character too many. The line whose best format costs the least
probability wins; a line that fits no format is a plate only when it looks like
one (4-9 letters and digits, a vanity plate of a country not configured).

A vehicle is read several times while it is tracked; :class:`PlateVote` votes
per character position, weighted by each read's confidence.

>>> reader = PlateReader(countries=["SK"])  # doctest: +SKIP
>>> reader.read(cv2.imread("car.jpg")).text  # doctest: +SKIP
'RK755AJ'
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from safecity.errors import ModelError, SourceError
from safecity.models import model_path
from safecity.models.onnx import open_session
from safecity.vision.plate_formats import (
    ALPHANUMERIC,
    PlateFormat,
    clean,
    format_prior,
    formats_for,
)

REC_HEIGHT = 48  # the recogniser's input height (PP-OCR)
MIN_LINE_HEIGHT = 8  # px: text lower than this is not read
LINE_ASPECT = (1.5, 12.0)  # width / height of a one-line plate's text (vanity 3 chars .. 10)
MAX_DROP = 12.0  # log-probability a format may cost over the free read, about three
# confident characters changed or dropped; a line costing more does not fit that format
PRIOR_UNIT = 2.0  # log-probability of one unit of plate_formats.format_prior: a foreign
# or vanity plate is taken as about e^2 = 7 times less likely than a home one
FREE_LENGTH = (4, 9)  # characters of a line that fits no format but may be a plate
FREE_MIN_CONFIDENCE = 0.8  # ... and how sure the recogniser must be of it


@dataclass(frozen=True)
class PlateReading:
    """One plate read on one vehicle crop (or voted over a track).

    ``text`` is normalised (letters and digits, upper case, in the country's format
    when one fits); ``raw`` is what the recogniser read on the line; ``box`` is
    (x, y, width, height) of the text line in the crop's pixels.
    """

    text: str
    raw: str
    confidence: float
    box: tuple[int, int, int, int]
    country: str | None = None  # the format's country; None when no format fitted
    char_confidences: tuple[float, ...] = ()


@dataclass(frozen=True)
class _Decoded:
    text: str
    char_confidences: tuple[float, ...]
    drop: float  # log-probability lost against the free read
    fmt: PlateFormat | None

    @property
    def confidence(self) -> float:
        return float(np.prod(self.char_confidences) ** (1 / max(len(self.text), 1)))


class _FormatTable:
    """The formats as index masks over the recogniser's alphanumeric columns."""

    def __init__(self, formats: Sequence[PlateFormat]):
        self.formats = tuple(formats)
        self.priors = [format_prior(f, formats) * PRIOR_UNIT for f in formats]
        self.masks = [
            np.array([[c in slot for c in ALPHANUMERIC] for slot in fmt.slots]) for fmt in formats
        ]


def _free_decode(logq: np.ndarray) -> tuple[str, tuple[float, ...], float]:
    """Greedy CTC: the best character each frame, repeats merged, blanks dropped."""
    best = logq.argmax(axis=1)
    chars: list[str] = []
    confs: list[float] = []
    previous = 0
    for t, k in enumerate(best):
        if k != 0 and k != previous:
            chars.append(ALPHANUMERIC[k - 1])
            confs.append(float(np.exp(logq[t, k])))
        elif k != 0 and k == previous:
            confs[-1] = max(confs[-1], float(np.exp(logq[t, k])))
        previous = k
    return "".join(chars), tuple(confs), float(logq.max(axis=1).sum())


def _aligned_decode(logq: np.ndarray, mask: np.ndarray) -> tuple[str, tuple[float, ...], float]:
    """Best CTC alignment of the frames to the format's slots (Viterbi).

    ``logq``: [T, 1 + 36] log-probabilities (blank first); ``mask``: [L, 36] the
    characters each slot allows. States alternate blank, slot 1, blank, slot 2 …;
    a slot's frames take the best character the slot allows.
    """
    frames = logq.shape[0]
    slots = mask.shape[0]
    if frames < slots:
        return "", (), -np.inf
    chars = logq[:, 1:]
    slot_scores = np.where(mask[None, :, :], chars[:, None, :], -np.inf).max(axis=2)  # [T, L]
    states = 2 * slots + 1
    emit = np.empty((frames, states))
    emit[:, 0::2] = logq[:, :1]
    emit[:, 1::2] = slot_scores
    score = np.full(states, -np.inf)
    score[0], score[1] = emit[0, 0], emit[0, 1]
    back = np.zeros((frames, states), dtype=np.int8)  # 0 stay, 1 from previous, 2 skip blank
    can_skip = np.zeros(states, dtype=bool)
    can_skip[3::2] = True
    for t in range(1, frames):
        stay = score
        step = np.concatenate(([-np.inf], score[:-1]))
        skip = np.where(can_skip, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        options = np.stack([stay, step, skip])
        back[t] = options.argmax(axis=0)
        score = options.max(axis=0) + emit[t]
    end = states - 1 if score[states - 1] >= score[states - 2] else states - 2
    total = float(score[end])
    if not np.isfinite(total):
        return "", (), -np.inf
    path = np.empty(frames, dtype=int)
    state = end
    for t in range(frames - 1, -1, -1):
        path[t] = state
        state -= int(back[t, state])
    text = []
    confs = []
    for slot in range(slots):
        frames_of_slot = path == 2 * slot + 1
        allowed = np.where(mask[slot], chars[frames_of_slot].sum(axis=0), -np.inf)
        k = int(allowed.argmax())
        text.append(ALPHANUMERIC[k])
        confs.append(float(np.exp(chars[frames_of_slot, k].max())))
    return "".join(text), tuple(confs), total


def decode_line(logq: np.ndarray, table: _FormatTable) -> _Decoded | None:
    """The line read in its cheapest format, or free when it fits none but looks like a
    plate anyway; None when it does not.

    A format may drop up to two characters of the free read (a flag band or sticker read
    as a letter) but adds none: a character the recogniser did not see is not invented.
    """
    free_text, free_confs, free_score = _free_decode(logq)
    fits = []
    for fmt, mask, prior in zip(table.formats, table.masks, table.priors, strict=True):
        if not 0 <= len(free_text) - len(fmt) <= 2:
            continue
        text, confs, score = _aligned_decode(logq, mask)
        drop = free_score - score
        if drop <= MAX_DROP:
            fits.append(_Decoded(text, confs, drop + prior, fmt))
    if fits:
        return min(fits, key=lambda d: d.drop)
    free = _Decoded(free_text, free_confs, 0.0, None)
    low, high = FREE_LENGTH
    if not low <= len(free_text) <= high or free.confidence < FREE_MIN_CONFIDENCE:
        return None
    # a plate has letters; one without digits (a vanity plate, or a word on the car) is
    # taken only from 5 letters up
    has_digit = any(c.isdigit() for c in free_text)
    has_letter = any(c.isalpha() for c in free_text)
    return free if has_letter and (has_digit or len(free_text) >= 5) else None


@dataclass
class PlateReader:
    """Reads the plate of a vehicle crop (BGR). One per worker thread or process;
    ``read`` is serialised by a lock (ONNX sessions are, the detector's state is not).

    ``countries``: codes of :data:`safecity.vision.plate_formats.COUNTRIES`; none:
    reads are only cleaned (upper-case letters and digits).
    """

    countries: Sequence[str] = ()
    threads: int = 1
    det_side: int = 736  # the crop is scaled so its shorter side is this (RapidOCR's default)
    det_path: Path | None = None
    rec_path: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._table = _FormatTable(formats_for(self.countries))
        det_path = self.det_path or model_path("ppocr_det")
        rec_path = self.rec_path or model_path("ppocr_rec")
        self._rec = open_session(rec_path, self.threads, what="plate recogniser model")
        self._columns = _alphanumeric_columns(self._rec)
        self._det = _open_detector(det_path, self.threads, self.det_side)

    def read(self, crop: np.ndarray) -> PlateReading | None:
        """The plate of one vehicle crop, or None when no line reads as a plate."""
        image = _check_image(crop)
        with self._lock:
            quads = self._detect(image)
            best: tuple[_Decoded, np.ndarray, str] | None = None
            for quad in quads:
                line = _line_image(image, quad)
                if line is None:
                    continue
                logq, raw = self._recognise(line)
                decoded = decode_line(logq, self._table)
                if decoded is not None and (best is None or _better(decoded, best[0])):
                    best = (decoded, quad, raw)
        if best is None:
            return None
        decoded, quad, raw = best
        x, y, w, h = cv2.boundingRect(quad.astype(np.float32))
        return PlateReading(
            text=decoded.text,
            raw=raw,
            confidence=round(decoded.confidence, 4),
            box=(int(x), int(y), int(w), int(h)),
            country=decoded.fmt.country if decoded.fmt else None,
            char_confidences=tuple(round(c, 4) for c in decoded.char_confidences),
        )

    def _detect(self, image: np.ndarray) -> list[np.ndarray]:
        result = self._det(image, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(result, "boxes", None)
        return [] if boxes is None else [np.asarray(b, dtype=np.float32) for b in boxes]

    def _recognise(self, line: np.ndarray) -> tuple[np.ndarray, str]:
        """[T, 37] log-probabilities (blank, then 0-9 A-Z) of a line, and its raw text."""
        h, w = line.shape[:2]
        width = max(REC_HEIGHT, int(np.ceil(REC_HEIGHT * w / h)))
        resized = cv2.resize(line, (width, REC_HEIGHT)).astype(np.float32)
        tensor = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        (probs,) = self._rec.run(None, {self._rec.get_inputs()[0].name: tensor})
        probs = probs[0]  # [T, classes], softmax already applied
        raw = _raw_text(probs, self._characters)
        folded = np.stack([probs[:, cols].sum(axis=1) for cols in self._columns], axis=1)
        folded[:, 0] = np.clip(1.0 - folded[:, 1:].sum(axis=1), 1e-9, None)  # all else: none
        return np.log(np.clip(folded, 1e-9, None)), raw

    @property
    def _characters(self) -> list[str]:
        return self.__dict__.setdefault("_chars", _character_list(self._rec))


def _better(a: _Decoded, b: _Decoded) -> bool:
    """Formatted reads beat free ones; then the one that costs its format less (the
    drop, priors included, against the scale of MAX_DROP) and is read more surely."""

    def rank(d: _Decoded) -> tuple[bool, float]:
        return d.fmt is not None, d.confidence - d.drop / MAX_DROP

    return rank(a) > rank(b)


def _character_list(session) -> list[str]:
    meta = session.get_modelmeta().custom_metadata_map
    if "character" not in meta:
        raise ModelError("the plate recogniser model carries no character list.")
    return ["<blank>", *meta["character"].splitlines(), " "]


def _alphanumeric_columns(session) -> list[list[int]]:
    """Output columns of blank, then each of 0-9 A-Z (a lower-case letter counts as its
    capital: plates are upper case)."""
    index = {c: i for i, c in enumerate(_character_list(session))}
    columns = [[0]]
    for char in ALPHANUMERIC:
        cols = [index[c] for c in {char, char.lower()} if c in index]
        if not cols:
            raise ModelError(f"the plate recogniser model cannot read the character {char}.")
        columns.append(cols)
    return columns


def _raw_text(probs: np.ndarray, characters: list[str]) -> str:
    best = probs.argmax(axis=1)
    out = []
    previous = 0
    for k in best:
        if k != 0 and k != previous:
            out.append(characters[k])
        previous = k
    return "".join(out)


def _open_detector(path: Path, threads: int, side: int):
    """RapidOCR's text detector (its DB post-processing) on our cached model file."""
    from rapidocr import RapidOCR

    if not Path(path).is_file():
        raise ModelError(f"plate text detector model {path} does not exist.")
    params = {
        "Global.use_cls": False,
        "Global.log_level": "error",
        "Det.model_path": str(path),
        "Det.limit_side_len": side,
        "Det.limit_type": "min",
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    try:
        return RapidOCR(params=params)
    except Exception as exc:  # RapidOCR raises its own untyped errors
        raise ModelError(f"cannot load the plate text detector {path} ({exc}).") from None


def _check_image(crop: object) -> np.ndarray:
    if not isinstance(crop, np.ndarray) or crop.ndim != 3 or crop.shape[2] != 3:
        raise SourceError("a vehicle crop must be a colour (BGR) image array.")
    if min(crop.shape[:2]) < MIN_LINE_HEIGHT:
        raise SourceError(f"a vehicle crop of {crop.shape[1]}x{crop.shape[0]} px is too small.")
    return crop


def _line_image(image: np.ndarray, quad: np.ndarray) -> np.ndarray | None:
    """The text line straightened out of the crop, or None when its shape is no plate's."""
    (tl, tr, br, bl) = quad
    width = float(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = float(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    low, high = LINE_ASPECT
    if height < MIN_LINE_HEIGHT or not low <= width / height <= high:
        return None
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return cv2.warpPerspective(
        image, matrix, (round(width), round(height)), borderMode=cv2.BORDER_REPLICATE
    )


def read_image_file(path: Path) -> np.ndarray:
    """A photo as BGR; SourceError in words when it is missing or not an image."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise SourceError(f"image {path} does not exist.")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise SourceError(f"{path} is not a readable image (corrupt or not a photo).")
    return image


class PlateVote:
    """The plate of one track, voted over its reads.

    Reads of the most common length vote per character position, each with its
    confidence; the track's confidence is the mean, over positions, of the winning
    character's share of the votes times the mean confidence of the reads that cast it.

    >>> vote = PlateVote()
    >>> for text, conf in [("RK755AJ", 0.9), ("RK755AJ", 0.8), ("RK765AJ", 0.5)]:
    ...     vote.add(PlateReading(text, text, conf, (0, 0, 1, 1)))
    >>> vote.result().text
    'RK755AJ'
    """

    def __init__(self, max_reads: int = 8):
        self.max_reads = max_reads
        self.reads: list[PlateReading] = []

    @property
    def full(self) -> bool:
        """Enough reads: the track need not be read again."""
        return len(self.reads) >= self.max_reads

    def add(self, read: PlateReading | None) -> None:
        if read is not None and not self.full:
            self.reads.append(read)

    def result(self) -> PlateReading | None:
        if not self.reads:
            return None
        by_length: dict[int, float] = defaultdict(float)
        for read in self.reads:
            by_length[len(read.text)] += read.confidence
        length = max(by_length, key=lambda n: by_length[n])
        voters = [r for r in self.reads if len(r.text) == length]
        chars = []
        scores = []
        for position in range(length):
            weights: dict[str, list[float]] = defaultdict(list)
            for read in voters:
                weights[read.text[position]].append(read.confidence)
            winner = max(weights, key=lambda c: sum(weights[c]))
            share = sum(weights[winner]) / sum(sum(w) for w in weights.values())
            chars.append(winner)
            scores.append(share * float(np.mean(weights[winner])))
        text = "".join(chars)
        best = max(voters, key=lambda r: (r.text == text, r.confidence))
        return PlateReading(
            text=text,
            raw=best.raw,
            confidence=round(float(np.mean(scores)), 4),
            box=best.box,
            country=best.country,
            char_confidences=tuple(round(s, 4) for s in scores),
        )


def read_plates(reader: PlateReader, crops: Iterable[np.ndarray]) -> PlateReading | None:
    """Read several crops of one vehicle and vote: what a track's plate is."""
    vote = PlateVote()
    for crop in crops:
        vote.add(reader.read(crop))
    return vote.result()


__all__ = ["PlateReading", "PlateReader", "PlateVote", "clean", "read_image_file", "read_plates"]
