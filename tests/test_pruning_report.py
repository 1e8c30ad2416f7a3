"""03's tables read from records: labels, the random control and the paper's figures."""
from __future__ import annotations

import pytest

from mmakit.report import pruning as report
from mmakit.study import common
from mmakit.study import pruning as study
from mmakit.study.params import Params


def record(method: str, seed: int, f1: float, selection: str = "global") -> dict:
    technique = {"method": method, "sparsity": 0.9, "schedule": "cubic", "mode": "gradual", "group_size": 1,
                 "kd": True, "selection": selection, "seed": seed, "initial_sparsity": 0.6, "pruning_steps": 5}
    return {"run": f"{method}-{selection}-s{seed}", "params": {"model": "tiny"}, "technique": technique,
            "f1": {lang: {"test": f1} for lang in ("en", "es", "nl")}}


RUNS = [record("random", 42, 0.2), record("random", 43, 0.4), record("movement", 42, 0.1),
        record("movement", 42, 0.5, "per_tensor"), record("obs", 42, 0.8)]


def test_per_tensor_runs_are_labelled_and_read_against_the_same_random_control():
    na = ", not applicable from a converged model"  # movement pruning the fine-tuned model
    assert report.label(RUNS[3]) == f"tiny movement 90% cubic per-tensor{na}"
    assert report.label(RUNS[2]) == f"tiny movement 90% cubic{na}"
    gaps = report.against_random(RUNS)
    assert gaps.loc[f"tiny movement 90% cubic per-tensor{na}", ("es", "mean")] == pytest.approx(0.2)
    assert gaps.loc[f"tiny movement 90% cubic{na}", ("es", "mean")] == pytest.approx(-0.2)
    assert "tiny random 90% cubic" not in gaps.index


def movement_run(smoke, **settings) -> tuple[Params, str, str]:
    """A per-tensor movement run at 80% with `settings` on top: its parameters, name and table label."""
    P = Params(dict(smoke) | {"method": "movement", "sparsity": 0.8, "schedule": "cubic", "kd": True,
                              "selection": "per_tensor", "seed": 42} | settings)
    technique = study.technique(P, "gradual", "movement", 0.8)
    return P, study.run_name(P), report.label({"params": {"model": "tiny"}, "technique": technique})


def test_a_variant_names_its_runs_and_rows(smoke):
    _, name, label = movement_run(smoke, variant="from10")
    assert name == "tiny-movement-80-cubic-pertensor-from10-s42"
    assert label == "tiny movement 80% cubic per-tensor, not applicable from a converged model (from10)"


def test_the_paper_figures_take_globally_selected_runs_from_the_fine_tuned_model_only():
    per_tensor_obs = record("obs", 43, 0.7, "per_tensor")
    from_pretrained = record("obs", 44, 0.6)
    from_pretrained["technique"]["start"] = "pretrained"
    found = report.paper_figure_records([*RUNS, per_tensor_obs, from_pretrained])
    assert [r["run"] for r in found["Figure 3: OBS, cubic"]] == ["obs-global-s42"]


def test_a_run_from_the_pretrained_encoder_starts_there_and_says_so(smoke, tiny_finetuned):
    assert study.start_model(smoke) is None  # the fine-tuned baseline, 03's default
    P, name, label = movement_run(smoke, prune_start="pretrained")
    assert name == "tiny-movement-80-cubic-pertensor-pretrained-s42"
    assert label == "tiny movement 80% cubic per-tensor, from pretrained"
    model, meta = study.start_model(P)
    pretrained, _ = common.fresh_model(P, seed=42)
    fine_tuned = tiny_finetuned[0]
    name = "bert.encoder.layer.0.attention.self.query.weight"
    weights = {k: m.state_dict()[name] for k, m in (("start", model), ("pre", pretrained), ("fine", fine_tuned))}
    assert meta["key"] == "pretrained" and weights["start"].equal(weights["pre"])
    assert not weights["start"].equal(weights["fine"])


def test_token_spread_falls_to_zero_when_every_token_looks_the_same(tiny_finetuned, tmp_path):
    import copy
    import importlib.util
    from pathlib import Path

    import torch

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "token_spread.py"
    spec = importlib.util.spec_from_file_location("token_spread", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model, tokenizer, _ = tiny_finetuned
    words = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    model.save_pretrained(tmp_path / "fine")
    tokenizer.save_pretrained(tmp_path / "fine")
    assert min(script.token_spread(tmp_path / "fine", words)) > 0.01
    blind = copy.deepcopy(model)
    with torch.no_grad():  # no word or position information left: every token the same vector
        blind.bert.embeddings.word_embeddings.weight.zero_()
        blind.bert.embeddings.position_embeddings.weight.zero_()
    blind.save_pretrained(tmp_path / "blind")
    tokenizer.save_pretrained(tmp_path / "blind")
    assert max(script.token_spread(tmp_path / "blind", words)) < 1e-5
