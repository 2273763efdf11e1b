"""Case ids of QuPath images: from metadata or a case map, never guessed."""

from __future__ import annotations

import pytest

from qupath_bridge.casemap import ImageRef, assign_cases, read_case_map
from sarcoma_risk.errors import InvalidInput

IMAGES = [
    ImageRef("1", "slide-a.svs", {"case_id": "STS-0001"}),
    ImageRef("2", "slide-b.svs", {}),
    ImageRef("3", "STS-0003 Smith.svs", {}),  # a name that looks like a case id is not used as one
    ImageRef("4", "dup.svs", {}),
    ImageRef("5", "dup.svs", {}),
]


def write(tmp_path, text, name="map.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_metadata_case_ids_are_used_and_images_without_one_are_listed_not_guessed():
    result = assign_cases(IMAGES)
    assert result.cases == {"1": "STS-0001"}
    assert [i.entry_id for i in result.unmapped] == ["2", "3", "4", "5"]
    assert result.problems == []


def test_a_case_map_fills_in_by_name_and_by_entry_id(tmp_path):
    case_map = read_case_map(write(tmp_path, "image;entry_id;case_id\nslide-b.svs;;STS-0002\n;5;STS-0005\n"))
    result = assign_cases(IMAGES, case_map)
    assert result.cases == {"1": "STS-0001", "2": "STS-0002", "5": "STS-0005"}
    assert [i.entry_id for i in result.unmapped] == ["3", "4"]
    assert case_map.unused(IMAGES) == []


def test_disagreeing_sources_and_shared_names_are_problems_not_choices(tmp_path):
    case_map = read_case_map(write(tmp_path, "image,case_id\nslide-a.svs,STS-0009\ndup.svs,STS-0004\n"
                                             "gone.svs,STS-0010\n"))
    result = assign_cases(IMAGES, case_map)
    problems = {ref.entry_id: text for ref, text in result.problems}
    assert set(problems) == {"1", "4", "5"}
    assert "STS-0001" in problems["1"] and "STS-0009" in problems["1"]
    assert "several project images are named 'dup.svs'" in problems["4"]
    assert "1" not in result.cases and "4" not in result.cases
    assert case_map.unused(IMAGES) == ["gone.svs"]


def test_an_identifying_case_id_in_metadata_is_refused():
    result = assign_cases([ImageRef("7", "x.svs", {"case_id": "Jane Doe 1970-01-01"})])
    (ref, text), = result.problems
    assert ref.entry_id == "7" and "metadata case_id" in text and "pseudonym" in text
    assert result.cases == {}


@pytest.mark.parametrize(("text", "match"), [
    ("name,case\nx,y\n", "needs the columns 'case_id' and 'image'"),
    ("image,case_id\nx.svs,Jane Doe\n", "row 1: case_id"),
    ("image,case_id\n,STS-1\n", "row 1: no image name"),
    ("image,case_id\nx.svs,STS-1\nx.svs,STS-2\n", "mapped to both STS-1 and STS-2"),
])
def test_bad_case_maps_are_refused_naming_the_file_and_row(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput, match=match) as info:
        read_case_map(path)
    assert "map.csv" in str(info.value)


def test_a_missing_case_map_file_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidInput, match="no such case map file"):
        read_case_map(tmp_path / "absent.csv")
