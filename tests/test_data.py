import warnings
from pathlib import Path

import pytest

from mmakit.core import data
from mmakit.core.data import (
    ConllFormatError,
    DataSourceError,
    iob1_to_iob2,
    load_split,
    read_conll,
)

from .conftest import FIXTURES, SHARED_DATA


def write(tmp_path: Path, text: str, name: str = "f.conll", encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_iob1_to_iob2_opens_every_entity_with_b():
    assert iob1_to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]


def test_reads_conll2003_with_docstart_and_converts_iob1(tmp_path):
    p = write(tmp_path, "-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\nPeter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\n")
    assert read_conll(p, 4, "IOB1") == [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter", "Blackburn"], ["B-PER", "I-PER"])]


def test_wrong_column_count_names_file_and_line(tmp_path):
    p = write(tmp_path, "Madrid NC B-LOC\nes O\n")
    with pytest.raises(ConllFormatError, match=r"f\.conll:2: expected 3 columns, found 2"):
        read_conll(p, 3)


def test_unknown_tag_names_file_and_line(tmp_path):
    p = write(tmp_path, "Madrid NC B-LOC\n\nX NC B-DATE\n")
    with pytest.raises(ConllFormatError, match=r"f\.conll:3: unknown tag 'B-DATE'"):
        read_conll(p, 3)


def test_iob2_violation_is_an_error_when_strict_and_repaired_with_warning_by_default(tmp_path):
    p = write(tmp_path, "la DA O\nHaya NC I-LOC\n")
    with pytest.raises(ConllFormatError, match=r"f\.conll:2: I-LOC follows O"):
        read_conll(p, 3, "IOB2", repair=False)
    with pytest.warns(UserWarning, match=r"f\.conll:2"):
        assert read_conll(p, 3, "IOB2") == [(["la", "Haya"], ["O", "B-LOC"])]


def test_iob1_file_may_open_entities_with_i(tmp_path):
    p = write(tmp_path, "in IN I-PP O\nBonn NNP I-NP I-LOC\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_conll(p, 4, "IOB1")[0][1] == ["O", "B-LOC"]


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ConllFormatError, match="no sentences"):
        read_conll(write(tmp_path, "\n-DOCSTART- -DOCSTART- O\n\n"), 3)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_conll(tmp_path / "nope", 3)


def test_latin1_original_is_accepted(tmp_path):
    p = write(tmp_path, "Le\u00f3n NC B-LOC\n", encoding="latin-1")
    assert read_conll(p, 3)[0][0] == ["Le\u00f3n"]


def test_utf8_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    p = write(tmp_path, "\ufeff-DOCSTART- -X- -X- O\n\nLe\u00f3n NNP I-NP I-LOC\nwins VBZ I-VP O\n", encoding="utf-8")
    assert p.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_conll(p, 4, "IOB1") == [(["Le\u00f3n", "wins"], ["B-LOC", "O"])]  # -DOCSTART- still recognized
    q = write(tmp_path, "\ufeffMadrid NC B-LOC\n", name="g.conll", encoding="utf-8")
    assert read_conll(q, 3) == [(["Madrid"], ["B-LOC"])]


def test_fixture_splits_share_one_label_set():
    for lang in data.LANGUAGES:
        for split in data.SPLITS:
            ds = load_split(lang, split, FIXTURES)
            assert ds.features["ner_tags"].feature.names == data.LABELS
            assert len(ds) > 0


def test_bad_language_split_and_data_dir():
    with pytest.raises(ValueError, match="choose from en, es, nl"):
        load_split("de", "train", FIXTURES)
    with pytest.raises(ValueError, match="choose from train, dev, test"):
        load_split("en", "validation", FIXTURES)
    with pytest.raises(DataSourceError, match="does not exist"):
        load_split("en", "train", "/no/such/dir")


def test_hub_failure_names_the_local_option(monkeypatch):
    import datasets

    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(DataSourceError, match="data_dir parameter or MMAKIT_DATA_DIR"):
        load_split("es", "dev")


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_real_files_sentence_counts():
    expected = {"en": (14041, 3250, 3453), "es": (8323, 1915, 1517), "nl": (15806, 2895, 5195)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Spanish files hold one repaired tag each
        got = {lang: tuple(len(load_split(lang, s, SHARED_DATA)) for s in data.SPLITS) for lang in expected}
    assert got == expected
