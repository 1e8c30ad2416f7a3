"""The paired bootstrap over test sentences: conlleval F1 from per-sentence chunk counts, [0, 0]
for identical predictions, an interval clear of zero for a clear improvement, and a one-seed
comparison judged from the predictions files records keep."""
import pytest
from seqeval.metrics import f1_score

from mmakit.core.data import load_split
from mmakit.core.evaluation import gold_tags
from mmakit.report.bootstrap import Bootstrap, chunk_counts, f1_of, paired_bootstrap
from mmakit.report.paired import Study
from mmakit.study.predictions import write_predictions
from tests.conftest import FIXTURES
from tests.report_records import run


def gold(lang: str) -> list[list[str]]:
    return gold_tags(load_split(lang, "test", FIXTURES))


def damaged(tags: list[list[str]], every: int) -> list[list[str]]:
    """Every `every`-th sentence's tags turned to O (its entities missed)."""
    return [["O"] * len(s) if i % every == 0 else s for i, s in enumerate(tags)]


def test_counts_per_sentence_give_conllevals_f1():
    truth = gold("es")
    guess = [[("I-" + t[2:]) if t.startswith("B-") and i % 3 else t for i, t in enumerate(s)] for s in truth]  # ill-formed I- starts
    guess = damaged(guess, 4)
    assert float(f1_of(chunk_counts(truth, guess).sum(axis=0))) == pytest.approx(f1_score(truth, guess))


def test_identical_predictions_give_zero_and_a_clear_improvement_excludes_it():
    counts = {lang: chunk_counts(gold(lang), damaged(gold(lang), 3)) for lang in ("es", "nl")}
    same = paired_bootstrap(counts, counts, resamples=1000)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    perfect = {lang: chunk_counts(gold(lang), gold(lang)) for lang in ("es", "nl")}
    better = paired_bootstrap(perfect, counts, resamples=1000)
    assert 0 < better.low < better.value < better.high and "bootstrap over sentences" in better.basis
    assert paired_bootstrap(perfect, counts, resamples=1000) == better  # seeded: the same interval every time


def test_a_one_seed_comparison_is_bootstrapped_from_the_stored_predictions(tmp_path):
    results = tmp_path / "results"
    truth = {(lang, "test"): gold(lang) for lang in ("en", "es", "nl")}

    def stored(name: str, every: int, training_key: str) -> dict:
        predicted = {key: damaged(tags, every) for key, tags in truth.items()}
        record = run("04_distillation", name, {"method": "distil"}, 0.0, seed=42, training={"key": training_key})
        record["params"] |= {"data_dir": str(FIXTURES)}
        record["predictions"] = write_predictions("04_distillation", name, predicted, truth, results)
        return record

    good, poor = stored("good", 50, "g"), stored("poor", 2, "p")
    study = Study([good, poor], Bootstrap(results, resamples=1000))
    est = study.difference(good, poor)
    assert est.low > 0 and est.basis == "1 seed, bootstrap over sentences (1000 resamples)"
    assert study.difference(good, good).high == 0.0
    bare = poor | {"predictions": None}
    assert Study([good, bare], Bootstrap(results)).difference(good, bare).basis == "no predictions stored: not judged"
