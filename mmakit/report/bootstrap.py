"""The paired bootstrap over test sentences: an interval for the difference between two runs
when a side has one seed, from the predictions the records keep (study.predictions).

conlleval's F1 over a corpus is 2C / (P + G) with C, P, G the counts of correct, predicted and
gold chunks summed over its sentences, so each run's per-sentence counts are computed once and
every resample is a weighted sum of them: thousands of resamples take a second. Both runs are
resampled with the same sentences (paired), each language on its own; the difference in mls is
the sum over es and nl of the F1 differences (the paper's reference row cancels).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from mmakit.core.data import DataSourceError, load_split
from mmakit.core.evaluation import ZERO_SHOT, gold_tags
from mmakit.report.intervals import LEVEL, Estimate, unjudged
from mmakit.study.predictions import load_predictions
from mmakit.study.records import results_root

Tags = list[list[str]]
NO_PREDICTIONS = "no predictions stored: not judged"


def chunk_counts(gold: Tags, pred: Tags) -> np.ndarray:
    """Per sentence: [correct, predicted, gold] chunks as conlleval reads them (seqeval's
    default mode), shape (sentences, 3)."""
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("predictions and gold tags differ in sentences or words")
    rows = []
    for g, p in zip(gold, pred):
        truth, guess = set(get_entities(g)), set(get_entities(p))
        rows.append((len(truth & guess), len(guess), len(truth)))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def f1_of(counts: np.ndarray) -> np.ndarray:
    """conlleval F1 from summed counts [..., (correct, predicted, gold)] (0 where nothing was found or due)."""
    correct, denominator = 2.0 * counts[..., 0], counts[..., 1] + counts[..., 2]
    return np.divide(correct, denominator, out=np.zeros_like(correct), where=denominator > 0)


def _resampled_f1_differences(a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator,
                              chunk: int = 200) -> np.ndarray:
    """F1(a) - F1(b) on `resamples` resamples of the sentences (the same ones for both)."""
    n, out = len(a), []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        out.append(f1_of(a[idx].sum(axis=1)) - f1_of(b[idx].sum(axis=1)))
    return np.concatenate(out)


def paired_bootstrap(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], langs: Sequence[str] = ZERO_SHOT,
                     resamples: int = 2000, seed: int = 0) -> Estimate:
    """Sum over `langs` of F1(a) - F1(b) with its percentile interval from `resamples` paired
    resamples of each language's sentences (`a`, `b`: chunk_counts per language)."""
    rng = np.random.default_rng(seed)
    point = sum(float(f1_of(a[lang].sum(axis=0)) - f1_of(b[lang].sum(axis=0))) for lang in langs)
    draws = sum(_resampled_f1_differences(a[lang], b[lang], resamples, rng) for lang in langs)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Estimate(point, float(low), float(high), f"1 seed, bootstrap over sentences ({resamples} resamples)")


_COUNTS: dict[tuple, dict[str, np.ndarray]] = {}  # per predictions file and gold
_DIFFERENCES: dict[tuple, Estimate] = {}  # per pair of predictions files and bootstrap


@lru_cache(maxsize=32)
def _gold(lang: str, split: str, data_dir: str | None, max_samples: int | None) -> tuple:
    return tuple(map(tuple, gold_tags(load_split(lang, split, data_dir, max_samples))))


@dataclass(frozen=True)
class Bootstrap:
    """Where predictions and gold tags are read from, and the bootstrap's size and seed."""

    results_dir: str | Path | None = None
    data_dir: str | Path | None = None
    resamples: int = 2000
    seed: int = 0

    def counts(self, record: Mapping, split: str, langs: Sequence[str]) -> dict[str, np.ndarray]:
        """chunk_counts per language of a record's stored predictions on `split`, computed once
        per predictions file (its hash) and gold."""
        data_dir, max_samples = self._data_dir(record), record.get("params", {}).get("max_eval_samples")
        key = (record["predictions"]["sha256"], str(results_root(self.results_dir)), data_dir, max_samples, split, tuple(langs))
        if key not in _COUNTS:
            predicted = load_predictions(record, self.results_dir)
            _COUNTS[key] = {lang: chunk_counts([list(s) for s in _gold(lang, split, data_dir, max_samples)],
                                               predicted[(lang, split)]) for lang in langs}
        return _COUNTS[key]

    def _data_dir(self, record: Mapping) -> str | None:
        found = self.data_dir or record.get("params", {}).get("data_dir")
        return str(found) if found else None

    def difference(self, a: Mapping, b: Mapping, split: str = "test", langs: Sequence[str] = ZERO_SHOT) -> Estimate:
        """Record `a` minus record `b` (sum of F1 over `langs`), paired over sentences; without
        predictions on either side the difference of their recorded scores, not judged."""
        recorded = sum(a["f1"][lang][split] - b["f1"][lang][split] for lang in langs)
        if not (a.get("predictions") and b.get("predictions")):
            return unjudged(recorded, NO_PREDICTIONS)
        key = (a["predictions"]["sha256"], b["predictions"]["sha256"], split, tuple(langs), self)
        if key not in _DIFFERENCES:
            try:
                counts_a, counts_b = self.counts(a, split, langs), self.counts(b, split, langs)
            except (DataSourceError, OSError, ValueError) as exc:  # gold or predictions not readable as recorded
                return unjudged(recorded, f"predictions not usable ({exc}): not judged")
            _DIFFERENCES[key] = paired_bootstrap(counts_a, counts_b, langs, self.resamples, self.seed)
        return _DIFFERENCES[key]
