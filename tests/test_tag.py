"""Tagging with an exported model folder: the evaluation path's predictions on the same
sentences, raw text and CoNLL input, long lines in pieces, JSON spans that match the CoNLL tags,
clear errors for a bad model folder, runtime or input, and the same tags in deepsparse."""
from __future__ import annotations

import json
import shutil

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from mmakit import cli
from mmakit.core import encoding, text
from mmakit.core.data import load_eval_sets
from mmakit.core.evaluation import EvalSuite
from mmakit.runtime import deepsparse_env, export
from mmakit.runtime.model_folder import ModelFolderError, load_folder
from mmakit.runtime.tagger import Tagger, entities, render
from mmakit.study import common

DEEPSPARSE_READY, DEEPSPARSE_WHY = deepsparse_env.status()
needs_deepsparse = pytest.mark.skipif(not DEEPSPARSE_READY, reason=f"{DEEPSPARSE_WHY} (CI provisions it)")


@pytest.fixture(scope="module")
def folder(exported):
    return exported[0]


@pytest.fixture(scope="module")
def tagger(folder):
    with Tagger(folder, threads=1) as t:
        yield t


@pytest.fixture(scope="module")
def english(smoke):
    """English training sentences, which the tiny model has memorised: tags with entities."""
    return common.english_train(smoke)["tokens"][:80]


def _tag_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["tag", "--threads", "1", *args])
    out, err = capsys.readouterr()
    return code, out, err


# text and encoding


def test_raw_text_is_split_at_whitespace_and_punctuation_keeping_character_spans():
    line = 'The U.S. economy grew 3.5% in 1,000 days; Jean-Pierre said "no".'
    words, spans = text.split_words(line)
    assert words == ["The", "U.S.", "economy", "grew", "3.5", "%", "in", "1,000", "days", ";", "Jean-Pierre", "said",
                     '"', "no", '"', "."]
    assert [line[a:b] for a, b in spans] == words


@pytest.mark.parametrize("source, fmt, words", [
    ("EU rejects German call .\nPeter Blackburn\n", text.TEXT, [["EU", "rejects", "German", "call", "."],
                                                               ["Peter", "Blackburn"]]),
    ("Hello world\nGood morning\n", text.TEXT, [["Hello", "world"], ["Good", "morning"]]),
    ("EU B-ORG\nrejects O\n", text.CONLL, [["EU", "rejects"]]),
    ("EU\nrejects\n\nPeter\nBlackburn\n\n", text.CONLL, [["EU", "rejects"], ["Peter", "Blackburn"]]),
    ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n", text.CONLL,
     [["EU", "rejects"], ["Peter"]]),
])
def test_input_format_is_detected_and_read(source, fmt, words):
    assert text.detect_format(source) == fmt
    assert [s.words for s in text.read_sentences(source)] == words


def test_raw_text_sentences_keep_their_line_numbers_and_blank_lines_give_none():
    sentences = text.read_sentences("First line .\n\n   \nSecond ,here\n", text.TEXT)
    assert [(s.line, s.words) for s in sentences] == [(1, ["First", "line", "."]), (4, ["Second", ",", "here"])]
    assert text.read_sentences("\n \n") == []


@pytest.mark.parametrize("counts, budget, expected", [
    ([1, 2, 3], 10, [(0, 3)]),
    ([3, 3, 3, 3], 6, [(0, 2), (2, 4)]),
    ([2, 9, 1], 4, [(0, 1), (1, 2), (2, 3)]),  # a word over the budget stands alone
    ([0, 4, 0, 4], 4, [(0, 3), (3, 4)]),  # words without sub-tokens cost nothing
    ([], 4, []),
])
def test_pieces_split_at_word_boundaries_within_the_budget(counts, budget, expected):
    assert encoding.pieces(counts, budget) == expected


def test_batches_are_padded_to_bucket_widths_and_filled_for_fixed_engines(tiny_finetuned):
    _, tokenizer, _ = tiny_finetuned
    sentences = [["EU", "rejects"] * n for n in (1, 5, 12, 3)]
    encoded = encoding.encode(tokenizer, sentences, 128)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    done = encoding.batches(encoded, 2, 16, names, tokenizer.pad_token_id, 128)
    assert [len(b.rows) for b in done] == [2, 2]
    assert all(b.shape[1] % 16 == 0 and b.shape[1] >= max(encoded.lengths[i] for i in b.rows) for b in done)
    assert encoding.bucket_width(130, 16, 128) == 130 and encoding.bucket_width(17, 16, 128) == 32
    filled = encoding.fill_rows(done[0].feed, 5)
    assert filled["input_ids"].shape == (5, done[0].shape[1])
    assert (filled["input_ids"][4] == filled["input_ids"][1]).all()


# tagging


def test_tags_equal_the_evaluation_paths_predictions(smoke, folder, tagger, english):
    """Export then tag gives what EvalSet.predict gives through the same graph, on every set:
    word for word, except where the tiny random model's top two logits nearly tie and the other
    padding of length-bucketed batches flips them (at most 1 word in 500)."""
    sets = load_eval_sets(splits=smoke.eval_splits, data_dir=smoke.get("data_dir"),
                          max_samples=smoke.get("max_eval_samples"))
    sets[("en", "train")] = common.english_train(smoke).select(range(len(english)))
    suite = EvalSuite(sets, tagger.model.tokenizer, smoke.max_length)
    logits = export.onnx_logits(folder / "model.onnx", threads=1)
    found, differ, total = 0, 0, 0
    for key, evalset in suite.sets.items():
        fits = [i for i, ids in enumerate(evalset.tokenized["input_ids"]) if len(ids) < smoke.max_length]
        expected = evalset.predict(logits, suite.pad_id)
        words = sets[key]["tokens"]
        ours = tagger.tag([words[i] for i in fits])
        assert [len(t) for t in ours] == [len(expected[i]) for i in fits], key  # one tag per word, same sentences
        differ += sum(a != b for tags, i in zip(ours, fits) for a, b in zip(tags, expected[i]))
        total += sum(len(t) for t in ours)
        found += sum(t != "O" for tags in ours for t in tags)
    assert differ <= total / 500, f"{differ} of {total} words tagged differently"
    assert found > 20  # the comparison covers entities, not only O


def test_a_line_longer_than_the_limit_is_tagged_in_pieces(tagger, english):
    long = [w for s in english[:40] for w in s]
    counts = encoding.subtoken_counts(tagger.model.tokenizer, [long])[0]
    budget = tagger.model.max_length - tagger.model.tokenizer.num_special_tokens_to_add(pair=False)
    parts = encoding.pieces(counts, budget)
    assert len(parts) >= 3
    tags = tagger.tag([long])[0]
    assert len(tags) == len(long)
    assert tags == [t for a, b in parts for t in tagger.tag([long[a:b]])[0]]
    monster = ["x" * 3000, "London"]  # one word past the limit on its own: cut by the tokenizer, still tagged
    assert len(tagger.tag([monster])[0]) == 2


def test_json_spans_match_the_conll_tags(folder, english, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(" ".join(s) for s in english[:30]) + "\n")
    code, conll, _ = _tag_cli(capsys, "--model", str(folder), str(source))
    assert code == 0
    blocks = [[line.split(" ") for line in block.splitlines()] for block in conll.strip("\n").split("\n\n")]
    code, out, _ = _tag_cli(capsys, "--model", str(folder), "--format", "json", str(source))
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]
    assert len(objects) == len(blocks) == 30
    spans = 0
    for obj, block in zip(objects, blocks):
        words, tags = [w for w, _ in block], [t for _, t in block]
        assert obj["words"] == words and obj["tags"] == tags
        assert [(e["type"], e["start"], e["end"] - 1) for e in obj["entities"]] == get_entities(tags)
        for e in obj["entities"]:
            assert obj["text"][e["start_char"]:e["end_char"]] == e["text"]
            assert e["text"].split() == words[e["start"]:e["end"]]
        spans += len(obj["entities"])
    assert spans > 5


def test_conll_input_is_tagged_word_for_word(folder, smoke, tmp_path, capsys):
    source = tmp_path / "in.conll"
    data = common.english_train(smoke).select(range(5))
    source.write_text("-DOCSTART- -X- -X- O\n\n" + "".join("".join(f"{w} NNP B-NP O\n" for w in s) + "\n"
                                                         for s in data["tokens"]))
    code, out, _ = _tag_cli(capsys, "--model", str(folder), str(source))
    assert code == 0
    assert [[line.split()[0] for line in b.splitlines()] for b in out.strip("\n").split("\n\n")] == data["tokens"]


def test_entities_without_spans_join_the_words():
    assert entities(["Anna", "Berg", "met", "Ivy"], ["B-PER", "I-PER", "O", "I-PER"]) == [
        {"type": "PER", "start": 0, "end": 2, "text": "Anna Berg"},
        {"type": "PER", "start": 3, "end": 4, "text": "Ivy"}]
    with pytest.raises(ValueError, match="conll, json"):
        render([], [], "xml")


# errors


def _broken_copy(folder, tmp_path, name: str, content: bytes | None):
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    if content is None:
        (copy / name).unlink()
    else:
        (copy / name).write_bytes(content)
    return copy


@pytest.mark.parametrize("name, content, message", [
    ("labels.json", None, "lacks labels.json"),
    ("model.onnx", None, "lacks model.onnx"),
    ("labels.json", b"{not json", "labels.json is corrupt"),
    ("labels.json", b'{"labels": [], "max_length": 128}', "labels.json is corrupt"),
    ("model.onnx", b"not a graph", "model.onnx is not a readable ONNX graph"),
    ("tokenizer.json", b"{", "tokenizer files"),
])
def test_a_broken_model_folder_names_the_file(folder, tmp_path, capsys, name, content, message):
    broken = _broken_copy(folder, tmp_path, name, content)
    source = tmp_path / "in.txt"
    source.write_text("Anna Berg met Ivy Chen in London .\n")
    code, out, err = _tag_cli(capsys, "--model", str(broken), str(source))
    assert code == 2 and out == ""
    assert message in err and str(broken) in err


def test_a_missing_folder_and_a_wrong_label_count_are_clear(folder, tmp_path):
    with pytest.raises(ModelFolderError, match="no model folder at .*absent.*mmakit export"):
        load_folder(tmp_path / "absent")
    broken = _broken_copy(folder, tmp_path, "labels.json", b'{"labels": ["O", "B-PER"], "max_length": 128}')
    with Tagger(broken, threads=1) as t, pytest.raises(ModelFolderError, match="9 logits per token but .* names 2"):
        t.tag([["Anna"]])


def test_unknown_runtime_empty_input_and_unknown_format_are_refused(folder, tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.txt"
    source.write_text("Anna Berg met Ivy Chen .\n")
    code, _, err = _tag_cli(capsys, "--model", str(folder), "--runtime", "tensorrt", str(source))
    assert code == 2 and "unknown runtime 'tensorrt'; choose from onnxruntime, deepsparse" in err
    code, _, err = _tag_cli(capsys, "--model", str(folder), "--format", "xml", str(source))
    assert code == 2 and "choose from conll, json" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n   \n\n")
    code, out, err = _tag_cli(capsys, "--model", str(folder), str(empty))
    assert code == 2 and out == "" and f"empty input: {empty} has no words to tag" in err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(""))
    code, _, err = _tag_cli(capsys, "--model", str(folder))
    assert code == 2 and "empty input: standard input" in err
    code, _, err = _tag_cli(capsys, "--model", str(folder), str(tmp_path / "nope.txt"))
    assert code == 2 and "nope.txt" in err


def test_deepsparse_without_its_environment_says_why(folder, tmp_path, monkeypatch):
    monkeypatch.setenv(deepsparse_env.VENV_ENV, str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="deepsparse cannot run here"):
        Tagger(folder, runtime="deepsparse")


@needs_deepsparse
@pytest.mark.deepsparse
def test_deepsparse_tags_as_onnxruntime_does(fp32_exported, english):
    sentences = english[:40] + [[w for s in english[:30] for w in s]]  # a long one, in pieces
    with Tagger(fp32_exported, threads=1) as ort, Tagger(fp32_exported, "deepsparse", batch_size=8, threads=1) as ds:
        assert ds.tag(sentences) == ort.tag(sentences)
        encoded, todo = ds.batches(sentences[:3])
        assert abs(ds.backend.logits(todo[0].feed) - ort.backend.logits(todo[0].feed)).max() < 1e-3


@pytest.fixture(scope="module")
def fp32_exported(export_records, tmp_path_factory):
    """The fp32 graph's folder: deepsparse aborts on onnxruntime's dynamic int8 graphs."""
    from mmakit.study.export_model import export

    return export("05_quantization/export-fp32", tmp_path_factory.mktemp("exported") / "fp32", verify=False)[0]
