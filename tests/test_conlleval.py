"""The headline F1 against conlleval (the CoNLL shared tasks' conlleval.pl, as the `conlleval`
package ports it) on the fixtures' gold tags corrupted the ways a model goes wrong, and the
strict IOB2 F1 against conlleval on the same output with its ill-formed chunks removed."""
import random

import pytest

from mmakit.core.data import ENTITY_TYPES, load_eval_sets
from mmakit.core.evaluation import gold_tags, score
from .conftest import FIXTURES

conlleval = pytest.importorskip("conlleval")

Tags = list[list[str]]


def _gold() -> Tags:
    return [s for ds in load_eval_sets(data_dir=FIXTURES).values() for s in gold_tags(ds)]


def _i_openers(tags: list[str], rng: random.Random) -> list[str]:
    """Half the entities opened by I- instead of B-."""
    return [f"I-{t[2:]}" if t.startswith("B-") and rng.random() < 0.5 else t for t in tags]


def _i_on_o(tags: list[str], rng: random.Random) -> list[str]:
    """A tenth of the O words tagged I- of some type."""
    return [f"I-{rng.choice(ENTITY_TYPES)}" if t == "O" and rng.random() < 0.1 else t for t in tags]


def _type_switch(tags: list[str], rng: random.Random) -> list[str]:
    """Inside tags of some entities switched to another type: B-X I-Y."""
    out, switch = [], None
    for t in tags:
        if t.startswith("B-"):
            switch = rng.choice([x for x in ENTITY_TYPES if x != t[2:]]) if rng.random() < 0.5 else None
        out.append(f"I-{switch}" if t.startswith("I-") and switch else t)
    return out


def _iob1(tags: list[str], rng: random.Random) -> list[str]:
    """IOB1 form: B- only where an entity follows one of its own type, I- everywhere else."""
    return [t if t.startswith("B-") and prev[2:] == t[2:] else ("I-" + t[2:] if t != "O" else t)
            for prev, t in zip(["O", *tags], tags)]


def _random(tags: list[str], rng: random.Random) -> list[str]:
    """A fifth of the words given any tag."""
    labels = ["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in "BI"]
    return [rng.choice(labels) if rng.random() < 0.2 else t for t in tags]


CORRUPTIONS = {f.__name__.strip("_"): f for f in (_i_openers, _i_on_o, _type_switch, _iob1, _random)}


def _corrupt(gold: Tags, how: str) -> Tags:
    rng = random.Random(0)
    return [CORRUPTIONS[how](tags, rng) for tags in gold]


def _conlleval(gold: Tags, pred: Tags) -> dict:
    lines = [line for g, p in zip(gold, pred) for line in [*(f"w {a} {b}" for a, b in zip(g, p)), ""]]
    return conlleval.evaluate(lines)


def _without_ill_formed(pred: Tags) -> Tags:
    """`pred` with every chunk opened by I- (and its continuation) set to O: what strict IOB2 reads."""
    out = []
    for tags in pred:
        fixed, dropped, prev = [], None, "O"
        for t in tags:
            if t.startswith("I-") and prev[2:] != t[2:]:
                dropped = t[2:]
            elif not (t.startswith("I-") and t[2:] == dropped):
                dropped = None
            fixed.append("O" if dropped else t)
            prev = t
        out.append(fixed)
    return out


@pytest.fixture(scope="module")
def gold() -> Tags:
    return _gold()


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_headline_f1_is_conllevals(gold, how):
    pred = _corrupt(gold, how)
    ours, theirs = score(gold, pred), _conlleval(gold, pred)
    chunks = theirs["overall"]["chunks"]["evals"]
    assert ours["f1"] == pytest.approx(chunks["f1"], abs=1e-9)
    assert ours["precision"] == pytest.approx(chunks["prec"], abs=1e-9)
    assert ours["recall"] == pytest.approx(chunks["rec"], abs=1e-9)
    per_type = {t: v["evals"]["f1"] for t, v in theirs["slots"]["chunks"].items()}
    assert ours["per_type"] == pytest.approx(per_type, abs=1e-9)


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_strict_f1_drops_exactly_the_ill_formed_chunks(gold, how):
    pred = _corrupt(gold, how)
    ours, kept = score(gold, pred), _conlleval(gold, _without_ill_formed(pred))
    found = _conlleval(gold, pred)["overall"]["chunks"]["stats"]["pred"]
    assert ours["ill_formed"] > 0 and ours["ill_formed"] == found - kept["overall"]["chunks"]["stats"]["pred"]
    assert ours["f1_strict"] == pytest.approx(kept["overall"]["chunks"]["evals"]["f1"], abs=1e-9)
    assert ours["f1_strict"] != pytest.approx(ours["f1"], abs=1e-6)


def test_both_readings_agree_on_well_formed_output(gold):
    pred = _corrupt(gold, "random")
    fixed = _without_ill_formed(pred)
    s = score(gold, fixed)
    assert s["ill_formed"] == 0 and s["f1"] == s["f1_strict"] == pytest.approx(
        _conlleval(gold, fixed)["overall"]["chunks"]["evals"]["f1"], abs=1e-9)
