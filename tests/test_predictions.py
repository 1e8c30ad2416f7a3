"""Predictions kept beside the records: where they go, that they read back as written, and that
rescoring them from the files gives the record's F1."""
import gzip
import json

import pytest

from mmakit.study.predictions import load_predictions, predictions_root, rescore, write_predictions

PRED = {("en", "dev"): [["B-PER", "I-PER", "O"], ["O"]], ("es", "test"): [["I-LOC", "O"]]}
GOLD = {("en", "dev"): [["B-PER", "I-PER", "O"], ["B-ORG"]], ("es", "test"): [["B-LOC", "O"]]}


def test_predictions_go_beside_the_results_and_read_back(tmp_path):
    results = tmp_path / "results"
    ref = write_predictions("01_baselines", "r1", PRED, GOLD, results)
    path = predictions_root(results) / "01_baselines" / "r1.jsonl.gz"
    assert path.parent.parent == tmp_path / "predictions" and ref["path"] == "predictions/01_baselines/r1.jsonl.gz"
    assert [p.name for p in path.parent.iterdir()] == ["r1.jsonl.gz"]  # no temp file left behind
    assert load_predictions({"predictions": ref}, results) == PRED
    header, *sets = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert header["labels"][0] == "O" and sets[1]["tags"] == [[header["labels"].index("I-LOC"), 0]]
    assert write_predictions("01_baselines", "r1", PRED, GOLD, results) == ref  # byte for byte reproducible


def test_a_file_that_is_not_the_records_is_refused(tmp_path):
    ref = write_predictions("01_baselines", "r1", PRED, GOLD, tmp_path / "results")
    write_predictions("01_baselines", "r1", {("en", "dev"): [["O", "O", "O"], ["O"]]}, GOLD, tmp_path / "results")
    with pytest.raises(ValueError, match="sha256"):
        load_predictions({"predictions": ref}, tmp_path / "results")
    with pytest.raises(ValueError, match="no predictions"):
        load_predictions({"notebook": "03_obs", "run": "x"}, tmp_path / "results")


def test_rescoring_the_files_gives_the_records_f1(smoke, tiny_finetuned, work_dirs):
    from mmakit.core.evaluation import torch_logits
    from mmakit.study import common

    model, tokenizer, _ = tiny_finetuned
    scored = common.score(smoke, common.eval_suite(smoke, tokenizer), torch_logits(model))
    record = common.result_record(smoke, "rescore-check", {"method": "fine-tune"}, scored, common.RunClock())
    assert (work_dirs["results_dir"].parent / record["predictions"]["path"]).is_file()
    again = rescore(record)
    assert {lang: set(s) for lang, s in again.items()} == {lang: set(s) for lang, s in record["f1"].items()}
    for lang, splits in record["f1"].items():
        for split, f1 in splits.items():
            assert again[lang][split]["f1"] == f1
            assert again[lang][split]["f1_strict"] == record["f1_strict"][lang][split]
            assert again[lang][split]["ill_formed"] == record["ill_formed"][lang][split]
    fewer = record | {"params": record["params"] | {"max_eval_samples": 5}}
    with pytest.raises(ValueError, match="gold tags read now differ"):
        rescore(fewer)
