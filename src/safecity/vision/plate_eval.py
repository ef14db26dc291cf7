"""Plate reading accuracy on a folder of photos with OpenALPR-style labels.

Each ``NAME.txt`` beside ``NAME.jpg`` holds ``file x y width height PLATE`` (the
OpenALPR benchmarks' ``endtoend`` layout). The whole photo is the vehicle crop.
The label is normalised with the same plate formats as the read: the benchmark
writes some plates with a letter O where the plate, by its country's format, has
the digit 0 (``RKO99AN`` on a Slovak plate), and the reverse.

>>> character_errors("RK755AJ", "RK765AJ")
1
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safecity.errors import SourceError
from safecity.vision.plate_formats import clean, formats_for, normalise
from safecity.vision.plates import PlateReader, PlateReading, read_image_file


@dataclass(frozen=True)
class PlateLabel:
    image: Path
    box: tuple[int, int, int, int]  # x, y, width, height
    plate: str


@dataclass(frozen=True)
class PlateOutcome:
    image: str
    truth: str
    read: str | None
    confidence: float | None
    found: bool
    errors: int  # edit distance between read and truth (len(truth) when nothing was read)
    ms: float


@dataclass
class PlateEvaluation:
    photos: int
    exact_rate: float
    character_error_rate: float
    found_rate: float
    ms_median: float
    countries: list[str]
    outcomes: list[PlateOutcome] = field(default_factory=list)

    @property
    def misses(self) -> list[PlateOutcome]:
        return [o for o in self.outcomes if o.read != o.truth]

    def to_dict(self) -> dict:
        return asdict(self) | {"misses": [asdict(o) for o in self.misses]}

    def format(self) -> str:
        lines = [
            f"photos: {self.photos} (countries: {', '.join(self.countries) or 'none'})",
            f"read exactly: {self.exact_rate:.1%}",
            f"character error rate: {self.character_error_rate:.2%}",
            f"plate found: {self.found_rate:.1%}",
            f"ms per vehicle crop (median): {self.ms_median:.0f}",
        ]
        for miss in self.misses:
            lines.append(f"  miss {miss.image}: truth {miss.truth}, read {miss.read or '-'}")
        return "\n".join(lines)


def load_labels(folder: Path) -> list[PlateLabel]:
    """Every ``*.txt`` label of ``folder``; SourceError in words for a bad folder or line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder of plate photos.")
    labels = []
    for txt in sorted(folder.glob("*.txt")):
        fields = txt.read_text(encoding="utf-8", errors="replace").split()
        if len(fields) < 6 or not all(f.lstrip("-").isdigit() for f in fields[1:5]):
            raise SourceError(f"{txt} is not a plate label ('file x y width height PLATE').")
        x, y, w, h = (int(f) for f in fields[1:5])
        labels.append(PlateLabel(folder / fields[0], (x, y, w, h), fields[5]))
    if not labels:
        raise SourceError(f"{folder} holds no plate labels (*.txt beside the photos).")
    return labels


def character_errors(read: str, truth: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(truth) + 1))
    for i, a in enumerate(read, 1):
        current = [i]
        for j, b in enumerate(truth, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


def plate_found(read: PlateReading | None, box: tuple[int, int, int, int]) -> bool:
    """The read's text line lies on the labelled plate: either box's centre is inside
    the other (text lines are tighter than plate labels, so IoU would mislead)."""
    if read is None:
        return False

    def centre_inside(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
        cx, cy = a[0] + a[2] / 2, a[1] + a[3] / 2
        return b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]

    return centre_inside(read.box, box) or centre_inside(box, read.box)


def evaluate_plates(folder: Path, countries: list[str], reader: PlateReader | None = None):
    """Read every labelled photo of ``folder``; figures over all photos (a photo with no
    read counts as missed, all its characters wrong)."""
    labels = load_labels(folder)
    formats = formats_for(countries)
    reader = reader or PlateReader(countries=countries)
    outcomes = []
    for label in labels:
        image = read_image_file(label.image)
        start = time.perf_counter()
        read = reader.read(image)
        ms = (time.perf_counter() - start) * 1000
        truth = normalise(label.plate, formats) or clean(label.plate)
        text = read.text if read else None
        outcomes.append(
            PlateOutcome(
                image=label.image.name,
                truth=truth,
                read=text,
                confidence=read.confidence if read else None,
                found=plate_found(read, label.box),
                errors=character_errors(text, truth) if text is not None else len(truth),
                ms=round(ms, 1),
            )
        )
    n = len(outcomes)
    return PlateEvaluation(
        photos=n,
        exact_rate=sum(o.read == o.truth for o in outcomes) / n,
        character_error_rate=sum(o.errors for o in outcomes) / sum(len(o.truth) for o in outcomes),
        found_rate=sum(o.found for o in outcomes) / n,
        ms_median=statistics.median(o.ms for o in outcomes),
        countries=[c.upper() for c in countries],
        outcomes=outcomes,
    )
