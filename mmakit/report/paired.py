"""Which runs pair with which, read from the records, and the interval each comparison gets.

Runs pair when they share a seed (a seed aggregate's runs, one per seed), or by lineage: a
run and the model it was made from (06 names its start and pruning stage by cache key), a
run and the dense baseline it started from (`baseline.key`; 04's students, fine-tuned from the
pre-trained encoder like the baselines, pair with the baseline of their own seed). Two or more
pairs: a t interval on the paired differences; one pair: the paired bootstrap over test
sentences from stored predictions; records without predictions say so and are not judged.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmakit.core.evaluation import ZERO_SHOT
from mmakit.report.bootstrap import Bootstrap
from mmakit.report.groups import incomparable
from mmakit.report.intervals import Estimate, mean_interval, paired_interval, unjudged

BASELINES = "01_baselines"
STUDENTS = "04_distillation"
MLS = "mls"


def value(record: Mapping, measure: str = MLS, split: str = "test") -> float | None:
    """Test mls (measure "mls") or one language's F1 (measure "en", "es" or "nl") of a record."""
    scores = record.get("mls") if measure == MLS else (record.get("f1") or {}).get(measure)
    return (scores or {}).get(split)


def _langs(measure: str) -> tuple[str, ...]:
    return ZERO_SHOT if measure == MLS else (measure,)


class Study:
    """The records of one CPU class, indexed for pairing, and how one-seed pairs are bootstrapped."""

    def __init__(self, records: Sequence[Mapping], bootstrap: Bootstrap | None = None):
        self.records = list(records)
        self.bootstrap = bootstrap or Bootstrap()
        self._by_run = {(r["notebook"], r["run"]): r for r in self.records}
        self._by_key: dict[str, Mapping] = {}
        for r in self.records:
            if not r.get("aggregate_of"):
                for key in (r.get("cache_key"), (r.get("training") or {}).get("key")):
                    if key and not (r["notebook"] == BASELINES and (r.get("params") or {}).get("run_tag")):
                        self._by_key.setdefault(key, r)

    def seeds(self, record: Mapping) -> dict:
        """{seed: the run of that seed}: a seed aggregate's runs (its own per-seed summary where
        a run's record is absent), or the record itself under its seed."""
        if not record.get("aggregate_of"):
            return {(record.get("technique") or {}).get("seed"): record}
        out = {}
        for name, entry in (record.get("per_seed") or {}).items():
            stub = {k: v for k, v in record.items() if k not in ("aggregate_of", "per_seed")}
            stub |= entry | {"run": name, "technique": record["technique"] | {"seed": entry.get("seed")}}
            out[entry.get("seed")] = self._by_run.get((record["notebook"], name), stub)
        return out

    def by_key(self, key: str | None) -> Mapping | None:
        """The per-seed record of the model cached under `key` (a checkpoint or cache key)."""
        return self._by_key.get(key) if key else None

    def source(self, record: Mapping) -> Mapping | None:
        """The model a 06 pipeline quantized: its pruning stage's record, else its start's."""
        made = (record.get("technique") or {}).get("made") or {}
        return self.by_key((made.get("pruning") or {}).get("key") or (made.get("start") or {}).get("key"))

    def baseline(self, record: Mapping) -> Mapping | None:
        """The dense 01 baseline (one seed) a run's model comes from."""
        if record["notebook"] == BASELINES:
            return record
        made = (record.get("technique") or {}).get("made") or {}
        if made.get("start"):
            start = self.by_key(made["start"].get("key"))
            return self.baseline(start) if start else None
        if record["notebook"] == STUDENTS:  # fine-tuned from the pre-trained encoder itself: the baseline of its seed
            seed = record["technique"].get("seed")
            return next((r for r in self._by_key.values() if r["notebook"] == BASELINES
                         and r["technique"].get("seed") == seed), None)
        return self.by_key((record.get("baseline") or {}).get("key"))

    def paired(self, pairs: Sequence[tuple[Mapping, Mapping]], measure: str = MLS, split: str = "test") -> Estimate:
        """The mean difference over matched pairs (a, b): t over the pairs, or the bootstrap for one."""
        for a, b in pairs:
            reason = incomparable(a, b)
            if reason:
                return unjudged(None, reason)
        diffs = [value(a, measure, split) - value(b, measure, split) for a, b in pairs
                 if value(a, measure, split) is not None and value(b, measure, split) is not None]
        if not diffs:
            return unjudged(None, "no pair of runs with this score")
        if len(pairs) == 1:
            return self.bootstrap.difference(*pairs[0], split, _langs(measure))
        return paired_interval(diffs)

    def difference(self, a: Mapping, b: Mapping, measure: str = MLS, split: str = "test") -> Estimate:
        """Setting `a` minus setting `b`, paired over their shared seeds."""
        seeds_a, seeds_b = self.seeds(a), self.seeds(b)
        shared = sorted(set(seeds_a) & set(seeds_b), key=str)
        if not shared:
            return unjudged(None, "no shared seed: not compared")
        return self.paired([(seeds_a[s], seeds_b[s]) for s in shared], measure, split)

    def mean(self, record: Mapping, measure: str = MLS, split: str = "test") -> Estimate:
        """A setting's score: the mean over its seeds with a t interval."""
        values = [value(r, measure, split) for r in self.seeds(record).values()]
        return mean_interval([v for v in values if v is not None])

    def cost(self, record: Mapping, split: str = "test") -> Estimate:
        """mls against our own dense baseline: each seed's run minus the baseline it came from."""
        if record["notebook"] == BASELINES:
            return unjudged(None, "our baseline")
        pairs = [(run, self.baseline(run)) for run in self.seeds(record).values()]
        pairs = [(run, base) for run, base in pairs if base is not None]
        if not pairs:
            return unjudged(None, "no baseline record")
        return self.paired(pairs, MLS, split)
