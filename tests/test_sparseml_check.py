"""SparseML as a cross-check of our OBS pruning: its environment's set-up and worker protocol
(cheap, no venv needed), and the check itself where .venv-sparseml exists."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest
import torch
import yaml

from mmakit import cli
from mmakit.runtime import sparseml_env
from mmakit.study import sparseml_check as check

SPARSEML_READY, SPARSEML_WHY = sparseml_env.status()


# --- the environment and its worker, without the venv -----------------------------------------

def test_torch_is_installed_alone_and_first():
    order = sparseml_env.install_order()
    assert order[0] == ["torch==2.13.0"]
    assert {"sparseml==1.8.0", "sparsezoo==1.8.1", "setuptools<81"} <= set(order[1])
    assert [p for step in order for p in step] == sparseml_env.pins()


def test_missing_environment_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv(sparseml_env.VENV_ENV, str(tmp_path / "absent"))
    usable, why = sparseml_env.status()
    assert not usable and "setup-sparseml" in why
    with pytest.raises(sparseml_env.WorkerFailed, match="setup-sparseml"):
        sparseml_env.run_worker({})


def test_setup_says_why_without_a_suitable_python(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(sparseml_env.VENV_ENV, str(tmp_path / "venv"))
    monkeypatch.setattr(sparseml_env, "SUPPORTED_PYTHONS", ("2.7",))
    assert cli.main(["setup-sparseml"]) == 1
    assert "needs Python 2.7-2.7" in capsys.readouterr().err
    assert not (tmp_path / "venv").exists()


def _fake_worker(tmp_path, monkeypatch, body: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(body))
    monkeypatch.setattr(sparseml_env, "status", lambda: (True, "fake"))
    monkeypatch.setattr(sparseml_env, "venv_python", lambda: sys.executable)
    monkeypatch.setattr(sparseml_env, "WORKER", script)


def test_worker_answer_and_failures_come_back_named(tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, """
        import json, sys
        request = json.loads(sys.stdin.read())
        print("library chatter", file=sys.stderr)
        print(json.dumps({"ok": request["ok"], "error": "no such modifier", "echo": request}))
    """)
    assert sparseml_env.run_worker({"ok": True})["echo"] == {"ok": True}
    with pytest.raises(sparseml_env.WorkerFailed, match="sparseml: no such modifier"):
        sparseml_env.run_worker({"ok": False})
    _fake_worker(tmp_path, monkeypatch, "import sys; print('Segmentation fault in sparseml', file=sys.stderr); sys.exit(3)")
    with pytest.raises(sparseml_env.WorkerFailed, match="exit.*code 3.*Segmentation fault"):
        sparseml_env.run_worker({})


# --- pieces of the check, without the venv ----------------------------------------------------

def test_recipe_prunes_exactly_the_given_weights_one_shot_with_our_settings():
    cfg = check.CheckConfig(num_grads=32, block_size=20)
    names = [f"{n}.weight" for n in check.prunable_weights(check.tiny_model(cfg))]

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!OBSPruningModifier", lambda loader, node: loader.construct_mapping(node))
    modifier = yaml.load(check.obs_recipe(names, 0.7, 3e-8, cfg), Loader=Loader)["modifiers"][0]
    assert modifier["params"] == names and len(names) == 6 * cfg.layers
    assert modifier["init_sparsity"] == modifier["final_sparsity"] == 0.7
    assert (modifier["num_grads"], modifier["fisher_block_size"], modifier["damp"]) == (32, 20, 3e-8)
    assert modifier["global_sparsity"] is True and modifier["mask_type"] == "unstructured"
    assert modifier["num_recomputations"] == 1


def test_default_damps_include_one_where_the_fisher_dominates():
    """1e-7 as before, and 1e-9, where this model's degeneracy is 0.47 (measured with our code:
    0.83 at 1e-7, 0.66 at 1e-8, 0.47 at 1e-9, 0.27 at 1e-10) and the study's own damp."""
    assert check.CheckConfig().damps == (1e-7, 1e-9)
    assert check.key(1e-9, 0.5) == "1e-09/0.5"


def test_synthetic_tags_need_the_previous_token():
    cfg = check.CheckConfig()
    a, b = check.synthetic_task(cfg, 50, 7), check.synthetic_task(cfg, 50, 7)
    assert a["input_ids"] == b["input_ids"] and a["labels"] == b["labels"]
    by_token: dict[int, set[int]] = {}
    for ids, tags in zip(a["input_ids"], a["labels"]):
        for token, tag in zip(ids[1:], tags[1:]):
            by_token.setdefault(token, set()).add(tag)
    assert sum(len(tags) > 1 for tags in by_token.values()) > len(by_token) / 2  # the token alone does not decide


def test_compare_counts_overlap_and_update_difference():
    dense = {"t.weight": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    ours = {"t": torch.tensor([0.0, 0.0, 3.5, 4.5])}
    theirs = {"t": torch.tensor([0.0, 2.0, 0.0, 4.25])}
    out = check.compare(ours, theirs, dense)
    assert out["overlap"] == 0.5 and out["pruned_ours"] == 2
    assert out["per_tensor"]["t"] == {"overlap": 0.5, "sparsity_ours": 0.5, "sparsity_sparseml": 0.5}
    assert out["update_rel_diff"] == pytest.approx(0.5)  # kept by both: the last weight, moved 0.5 vs 0.25
    same = check.compare(ours, {"t": ours["t"].clone()}, dense)
    assert same["overlap"] == 1.0 and same["update_rel_diff"] == 0.0


# --- the check itself, in the sparseml venv -----------------------------------------------------

@pytest.fixture(scope="module")
def record(work_dirs, tmp_path_factory):
    """The check run by its command, from an empty working directory (SparseML must leave no
    sparse_logs/ there), its record read back from RESULTS_DIR/bench/."""
    if not SPARSEML_READY:
        pytest.skip(f"{SPARSEML_WHY} (`make sparseml` provisions it)")
    here, cwd = os.getcwd(), tmp_path_factory.mktemp("cwd")
    os.chdir(cwd)
    try:
        assert cli.main(["sparseml-check"]) == 0
    finally:
        os.chdir(here)
    assert not any(cwd.iterdir())
    return json.loads((work_dirs["results_dir"] / "bench" / "sparseml_obs_check.json").read_text())


def test_both_environments_build_the_same_model(record):
    assert record["versions"]["sparseml"] == "1.8.0"
    assert record["model_parity"] < 1e-5  # dense loss of every gradient batch, here and in the worker


def test_one_row_per_damp_and_sparsity(record):
    cfg = record["config"]
    assert [(r["damp"], r["sparsity"]) for r in record["results"]] == \
        [(d, s) for d in cfg["damps"] for s in cfg["sparsities"]]
    for row in record["results"]:
        assert row["fisher_degeneracy"] == record["fisher_degeneracy"][f"{row['damp']:g}"]
    assert set(record["recipes"]) == {f"{d:g}/{s:g}" for d in cfg["damps"] for s in cfg["sparsities"]}


def _rows(record, damp):
    return [r for r in record["results"] if r["damp"] == damp]


def test_the_check_can_tell_obs_from_magnitude(record):
    """Guards the meaning of the agreement below: on this model OBS's choice and update differ
    clearly from magnitude pruning's, so a matching pruned set is not a trivial one. At 1e-7 the
    damp dominates the Fisher (degeneracy 0.83) and OBS leaves magnitude's pruned set in only
    2.7-3.5% of it; at the low damp (degeneracy 0.47) in 6.7-8.7%, 2.4-2.5 times as much
    (measured: overlap with magnitude 0.965 / 0.973 at 1e-7, 0.913 / 0.933 at 1e-9, for 50% / 70%)."""
    high, low = max(r["damp"] for r in record["results"]), min(r["damp"] for r in record["results"])
    assert record["fisher_degeneracy"][f"{low:g}"] < 0.5
    for row in record["results"]:
        assert row["overlap_ours_magnitude"] < 0.99, (row["damp"], row["sparsity"])
    for row_high, row_low in zip(_rows(record, high), _rows(record, low)):
        assert row_low["overlap_ours_magnitude"] < 0.95, row_low["sparsity"]
        assert 1 - row_low["overlap_ours_magnitude"] > 2 * (1 - row_high["overlap_ours_magnitude"]), row_low["sparsity"]
    for damp in (high, low):
        worst = _rows(record, damp)[-1]
        assert worst["loss_magnitude"] > 1.5 * worst["loss_ours"], damp  # 70%: 0.254 vs 0.078 (1e-7), 0.083 (1e-9)


def test_our_obs_prunes_what_sparseml_prunes(record):
    """Same Fisher, saliency, global selection and update up to float32 rounding: the pruned sets
    must agree to 99.8% (globally) and 99% (per tensor) at every damp. Each single convention
    difference moves more than that on this model (measured, global / worst tensor, 50% and 70%:
    at 1e-7 damp x1.5 0.996-0.997, x4 or /4 0.986-0.991 / 0.967-0.982, another draw of the m
    batches 0.989-0.991 / 0.982-0.986, B = 25 instead of 50 0.978-0.981 / 0.928-0.941; at 1e-9 more:
    x1.5 0.993-0.995, x4 or /4 0.976-0.984 / 0.920-0.971, other batches 0.973-0.978 / 0.959-0.962,
    B = 25 0.923-0.941 / 0.750-0.810); rounding moved none at 1e-7, 1e-8, 1e-9 or 1e-10.

    The updates' relative difference is rounding: 2.5-2.9e-6 at 1e-7 but 0.7-1.1e-4 at 1e-9
    (1.1-1.2e-5 at 1e-8, 4.3-4.9e-4 at 1e-10): float32 Sherman-Morrison from I / damp gets
    worse conditioned as the damp falls, in both implementations alike (against a float64 build
    of ours at 1e-9, ours is 5.8-8.2e-5 off and SparseML 3.0-4.5e-5; at 1e-7 both ~2e-6). The one
    bound 1e-3 is ~9x that at 1e-9 and far below what any convention difference gives
    (damp x1.5: 0.18-0.24, other batches 0.72-0.90)."""
    for row in record["results"]:
        where = (row["damp"], row["sparsity"])
        assert row["overlap"] >= 0.998, where
        assert min(t["overlap"] for t in row["per_tensor"].values()) >= 0.99, where
        assert row["update_rel_diff"] < 1e-3, where


def test_held_out_losses_agree(record):
    """|loss ours - loss SparseML| is rounding: at most 1.4e-8 at 1e-7 and 4.8e-7 at 1e-9 (2.3e-6
    at 1e-10); the bound 2e-5 is 40x the 1e-9 value and 10x below the smallest held-out loss change
    of a convention difference measured (2.2e-4: damp x1.5 at 1e-9, 70%)."""
    for row in record["results"]:
        where = (row["damp"], row["sparsity"])
        assert abs(row["loss_ours"] - row["loss_sparseml"]) < 2e-5, where
        assert row["loss_ours"] < row["loss_magnitude"], where
