"""Licence plates read with the real PP-OCR models on the OpenALPR EU photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from safecity.errors import ConfigError, SourceError
from safecity.vision.plate_eval import character_errors, load_labels, plate_found
from safecity.vision.plate_formats import formats_for, normalise
from safecity.vision.plates import PlateReader, PlateReading, PlateVote, read_image_file

EU_COUNTRIES = ["SK", "CZ", "PL", "GB"]  # the countries of the photos, home country first


@pytest.fixture(scope="module")
def plates_dir(data_dir: Path) -> Path:
    return data_dir / "plates" / "eu"


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(countries=EU_COUNTRIES)


# ---------------------------------------------------------------- formats (pure)


@pytest.mark.parametrize(
    ("text", "countries", "expected"),
    [
        ("PP-587A0", ["SK"], "PP587AO"),  # letter slot: 0 -> O
        ("RK-O99AN", ["SK"], "RK099AN"),  # digit slot: O -> 0
        ("BA 2681M", ["SK"], "BA268IM"),  # letter slot: 1 -> I
        ("rk 755 aj", ["SK"], "RK755AJ"),  # case, spaces
        ("4B0 4979", ["CZ"], "4B04979"),
        ("4BO 4979", ["CZ"], "4B04979"),  # Czech plates carry no O
        ("OYO9 FEU", ["GB"], "OY09FEU"),
        ("W0 53011", ["PL"], "WO53011"),  # district letters
        ("KM-BORAK", ["SK"], "KMBORAK"),  # a vanity plate stays as written
        ("RKO99AN", ["SK", "PL"], "RK099AN"),  # home format with one swap beats a foreign fit
        ("B-MW 1234", ["DE"], "BMW1234"),
        ("AB-123-CD", ["FR"], "AB123CD"),
        ("1234 BCD", ["ES"], "1234BCD"),
    ],
)
def test_normalise_puts_text_in_the_format(text, countries, expected) -> None:
    assert normalise(text, formats_for(countries)) == expected


def test_normalise_refuses_what_fits_no_format() -> None:
    assert normalise("EXIT 79", formats_for(["SK"])) is None
    assert normalise("", formats_for(["SK", "CZ"])) is None
    assert normalise("AB-123-IO", formats_for(["FR"])) is None  # no I or O on French plates


def test_unknown_country_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="known: SK"):
        formats_for(["SK", "XX"])


def test_config_checks_countries() -> None:
    from pydantic import ValidationError

    from safecity.config import PlatesConfig

    assert PlatesConfig(countries=["sk", "cz"]).countries == ["SK", "CZ"]
    with pytest.raises(ValidationError, match="no plate formats for XX"):
        PlatesConfig(countries=["XX"])


def test_vote_per_position_weighted_by_confidence() -> None:
    vote = PlateVote()
    for text, conf in [("RK755AJ", 0.6), ("RK765AJ", 0.9), ("RK755AJ", 0.7), ("RK755A", 0.99)]:
        vote.add(PlateReading(text, text, conf, (0, 0, 10, 5)))
    result = vote.result()
    assert result is not None
    assert result.text == "RK755AJ"  # 1.3 for 5 against 0.9 for 6; the 6-char read is outvoted
    assert 0 < result.confidence < 0.9  # the disagreement lowers it
    assert PlateVote().result() is None


def test_character_errors() -> None:
    assert character_errors("RK755AJ", "RK755AJ") == 0
    assert character_errors("RRK755AJ", "RK755AJ") == 1
    assert character_errors("RK75AJ", "RK755AJ") == 1
    assert character_errors("", "RK755AJ") == 7


# ---------------------------------------------------------------- real photos


@pytest.mark.parametrize(
    ("photo", "plate"),
    [
        ("test_002.jpg", "RK755AJ"),
        ("test_001.jpg", "PP587AO"),  # read PP-587A0: the format makes the last a letter
        ("test_007.jpg", "RK828AG"),  # read RRK-828AG: the band's extra R is dropped
        ("test_065.jpg", "4B04979"),  # Czech
        ("eu5.jpg", "OY09FEU"),  # British
    ],
)
def test_known_plates_read_exactly(reader, plates_dir, photo, plate) -> None:
    read = reader.read(read_image_file(plates_dir / photo))
    assert read is not None
    assert read.text == plate
    assert 0.5 < read.confidence <= 1
    label = next(lb for lb in load_labels(plates_dir) if lb.image.name == photo)
    assert plate_found(read, label.box)


def test_no_plate_gives_no_read(reader, data_dir) -> None:
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert reader.read(blank) is None
    portrait = read_image_file(data_dir / "images" / "obama.jpg")
    assert reader.read(portrait) is None


def test_corrupt_image_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "car.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(SourceError, match="not a readable image"):
        read_image_file(bad)
    with pytest.raises(SourceError, match="does not exist"):
        read_image_file(tmp_path / "missing.jpg")


def test_bad_crop_is_a_clear_error(reader) -> None:
    with pytest.raises(SourceError, match="colour"):
        reader.read(np.zeros((100, 100), np.uint8))
    with pytest.raises(SourceError, match="too small"):
        reader.read(np.zeros((4, 100, 3), np.uint8))


def test_track_vote_over_several_views(reader, plates_dir) -> None:
    """A vehicle read at three sizes (as it comes closer) votes to its plate."""
    image = read_image_file(plates_dir / "test_010.jpg")
    vote = PlateVote()
    for scale in (0.6, 0.8, 1.0):
        vote.add(reader.read(cv2.resize(image, None, fx=scale, fy=scale)))
    result = vote.result()
    assert result is not None and result.text == "RK248AH"
