"""Movement pruning as Sanh et al. (2020) define it (trained scores through a straight-through
mask, weights free to come back until the masks are fixed) in its own regime (from the
pre-trained encoder, sparsity from 0, no learning-rate rewinds) with magnitude and random as
controls in that regime; the diagnostics of accumulated scores on a converged model; the
report's split of Table 3 by regime."""
import copy
import math

import pytest
import torch
import yaml
from torch import nn
from torch.nn.utils import parametrize

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.train import fine_tune
from mmakit.report import pruning as report
from mmakit.study import baseline, common, params
from mmakit.study import movement_diagnostics as study_diagnostics
from mmakit.study import pruning as study
from mmakit.study.params import Params
from mmakit.techniques.pruning import Masks, PruningConfig, gradual_prune, prunable_weights
from mmakit.techniques.pruning import diagnostics, straight_through
from mmakit.techniques.pruning.gradual import curve_events
from mmakit.techniques.pruning.movement import TrainedMovementPruner

SANH = dict(method="movement", movement_scores="trained", sparsity=0.8, initial_sparsity=0.0, warmup_steps=2,
            pruning_steps=6, prune_interval=2, final_steps=4, selection="per_tensor", lr_rewind=False)
FILES = {m: f"{m}-80-cubic-pertensor-pretrained{'-trained' if m == 'movement' else ''}-from0-s42.yaml"
         for m in ("movement", "magnitude", "random")}
CONLL_EN_TRAIN = 14041  # sentences of CoNLL-2003 English train: the quick profile's epoch


@pytest.fixture(scope="module")
def tiny(smoke, tiny_finetuned):
    model, tokenizer, _ = tiny_finetuned
    train = tokenize_dataset(baseline.english_train(smoke), tokenizer, smoke.max_length)
    return model, tokenizer, train


def originals(model: nn.Module) -> dict[str, torch.Tensor]:
    """The stored (unmasked) values of the prunable weights, parametrized or not."""
    out = {}
    for name, module in model.named_modules():
        if parametrize.is_parametrized(module, "weight"):
            out[name] = module.parametrizations.weight.original.detach().clone()
    return out or {n: w.detach().clone() for n, w in prunable_weights(model).items()}


# --- the straight-through mask ----------------------------------------------------------------

@pytest.mark.parametrize("group", [1, 4])
def test_straight_through_gradient_reaches_the_scores_as_the_masked_weights_gradient_times_w(group):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 6))
    x, y = torch.randn(5, 8), torch.randn(5, 6)
    w = model[0].weight
    masks = Masks({"0": w}, group)
    masks.keep["0"].view(-1, group)[::3] = False
    attached = straight_through.attach(model, masks)
    ((model(x) - y) ** 2).sum().backward()
    # the same loss with W' = W * M as a leaf: dL/dW'
    w_masked = (w.detach() * masks.keep["0"]).requires_grad_(True)
    ((nn.functional.linear(x, w_masked, model[0].bias.detach()) - y) ** 2).sum().backward()
    expected = (w_masked.grad * w.detach()).reshape(-1, group).sum(1)
    torch.testing.assert_close(attached["0"].scores.grad, expected)
    torch.testing.assert_close(w.grad, w_masked.grad * masks.keep["0"])  # pruned weights get no gradient
    assert torch.equal(model[0].weight, w.detach() * masks.keep["0"])  # the forward sees W * M exactly


def test_with_nothing_pruned_the_mask_leaves_training_as_it_was_and_the_scores_learn(tiny, smoke):
    """The trained-movement path trains the model like plain fine-tuning until a cut: its zero
    F1 comes from the cuts, not from the parametrization (same losses, weights moved)."""
    model, tokenizer, train = tiny
    cfg = common.train_config(smoke, epochs=1, max_grad_norm=1e9)  # no clipping: the scores' gradients add to the norm
    runs = {}
    for attach in (False, True):
        copied = copy.deepcopy(model)
        masks = Masks(prunable_weights(copied), selection="per_tensor")
        before = {n: w.detach().clone() for n, w in masks.weights.items()}
        attached = straight_through.attach(copied, masks) if attach else {}
        trained = fine_tune(copied, train.select(range(32)), cfg, tokenizer.pad_token_id)
        moved = max(float((w.detach() - before[n]).abs().max()) for n, w in masks.weights.items())
        runs[attach] = (trained.losses, moved, straight_through.scores(attached))
    torch.testing.assert_close(torch.tensor(runs[True][0]), torch.tensor(runs[False][0]), rtol=1e-4, atol=1e-5)
    assert runs[True][1] > 0 and runs[True][1] == pytest.approx(runs[False][1], rel=1e-3)
    assert all(float(s.abs().max()) > 0 for s in runs[True][2].values())


def test_reselect_brings_back_a_group_whose_score_rose():
    w = nn.Parameter(torch.ones(2, 4))
    masks = Masks({"w": w})
    masks.select({"w": torch.arange(8.0)}, 0.25)
    assert masks.keep["w"].reshape(-1)[:2].tolist() == [False, False]
    new, back = masks.reselect({"w": torch.tensor([9.0, 1, 0, 3, 4, 5, 6, 7])}, 0.25)
    assert (new, back) == (1, 1) and masks.keep["w"].reshape(-1)[:3].tolist() == [True, False, False]
    assert masks.pruned() == 2


def test_a_pruned_weight_keeps_its_value_and_comes_back_then_the_last_event_fixes_the_masks():
    model = nn.Sequential(nn.Linear(4, 2))
    w = model[0].weight
    with torch.no_grad():
        w.copy_(torch.arange(1.0, 9.0).view(2, 4))
    masks = Masks({"0": w}, selection="per_tensor")
    pruner = TrainedMovementPruner(events=3)
    pruner.start(model, masks)
    scores = pruner.attached["0"].scores
    with torch.no_grad():
        scores.copy_(torch.arange(8.0))
    first = pruner.prune(model, masks, 0.5, 0)
    assert first["newly_pruned_groups"] == 4 and not pruner.zeroes_pruned
    assert torch.equal(w.detach(), torch.arange(1.0, 9.0).view(2, 4))  # stored values untouched
    assert int((model[0].weight == 0).sum()) == 4  # the forward sees them pruned
    with torch.no_grad():
        scores.copy_(torch.tensor([9.0, 8, 0, 1, 2, 3, 4, 5]))  # the first two weights' scores rose
    second = pruner.prune(model, masks, 0.5, 1)
    assert second["revived_groups"] == 2 and masks.keep["0"].reshape(-1)[:2].all()
    assert model[0].weight.reshape(-1)[:2].tolist() == [1.0, 2.0]  # back with their old values
    last = pruner.prune(model, masks, 0.75, 2)
    assert last["masks_fixed"] and pruner.zeroes_pruned and not parametrize.is_parametrized(model[0])
    assert model[0].weight is w and int((w == 0).sum()) == 6  # a plain parameter again, pruned ones zero


def test_trained_scores_need_training_and_a_movement_method():
    with pytest.raises(ValueError, match="movement"):
        PruningConfig(method="magnitude", movement_scores="trained")
    with pytest.raises(ValueError, match="initial_sparsity 0"):
        PruningConfig(method="movement", movement_scores="trained", initial_sparsity=0.5, warmup_steps=0)
    with pytest.raises(RuntimeError, match="gradually"):
        TrainedMovementPruner(1).prune(None, Masks({"w": nn.Parameter(torch.ones(4))}), 0.5, 0)


def test_curve_points_at_every_event_or_at_most_twelve_evenly_spread():
    assert curve_events(10) == set(range(10))
    picked = curve_events(93)
    assert len(picked) == 12 and {0, 92} <= picked


# --- in a pruning run -----------------------------------------------------------------------

def test_gradual_trained_movement_revives_weights_then_trains_with_fixed_masks(tiny, smoke):
    model, tokenizer, train = tiny
    model = copy.deepcopy(model)
    cfg = PruningConfig(**SANH)
    points = {}

    def snapshot(m):
        points[len(points)] = {"stored": originals(m), "parametrized": any(
            parametrize.is_parametrized(x, "weight") for x in m.modules())}
        return {}

    log = gradual_prune(model, train, tokenizer.pad_token_id, baseline.train_config(smoke), cfg, curve_fn=snapshot)
    assert log.training["steps"] == cfg.plan.total_steps and log.training["train"]["restarts"] == []
    assert [s["target_sparsity"] for s in log.steps][0] == 0.0  # the cubic curve starts at 0
    assert sum(s["revived_groups"] for s in log.steps[:-1]) > 0  # weights came back before the final stage
    assert [s["masks_fixed"] for s in log.steps] == [False] * (cfg.pruning_steps - 1) + [True]
    middle = points[3]  # after the second event: pruned weights still stored with their values
    assert middle["parametrized"] and all(bool((w != 0).all()) for w in middle["stored"].values())
    fixed, end = points[2 * cfg.pruning_steps - 1], points[2 * cfg.pruning_steps]  # after the last event, end
    assert not fixed["parametrized"] and not end["parametrized"]
    for name, w in end["stored"].items():
        assert torch.equal(w == 0, fixed["stored"][name] == 0), name  # masks fixed in the final stage
    assert any(not torch.equal(end["stored"][n], fixed["stored"][n]) for n in end["stored"])
    for name, w in prunable_weights(model).items():  # each tensor to the target (per-tensor TopK)
        assert int((w == 0).sum()) == round(0.8 * w.numel()), name
    assert not any("scores" in n for n in model.state_dict())  # saves as a plain model


def test_magnitude_and_random_run_in_the_same_regime_and_steps_as_trained_movement(tiny, smoke):
    model, tokenizer, train = tiny
    logs = {}
    for method in ("movement", "magnitude", "random"):
        cfg = PruningConfig(**SANH | {"method": method, "movement_scores": "trained" if method == "movement"
                                      else "accumulated"})
        pruned = copy.deepcopy(model)
        logs[method] = (gradual_prune(pruned, train, tokenizer.pad_token_id, baseline.train_config(smoke), cfg),
                        {n: int((w == 0).sum()) for n, w in prunable_weights(pruned).items()})
    runs = {m: (log.training["steps"], log.training["train"], [(s["step"], s["target_sparsity"]) for s in log.steps],
                zeros) for m, (log, zeros) in logs.items()}
    assert runs["movement"] == runs["magnitude"] == runs["random"]
    assert sum(s["revived_groups"] for s in logs["movement"][0].steps) > 0
    assert all("revived_groups" not in s for s in logs["magnitude"][0].steps)  # the controls' masks only grow


def sanh_params(smoke, method: str, **settings) -> Params:
    scores = {"movement_scores": "trained"} if method == "movement" else {}
    return Params(dict(smoke) | {"method": method, "sparsity": 0.8, "schedule": "cubic", "selection": "per_tensor",
                                 "prune_start": "pretrained", "initial_sparsity": 0.0, "pruning_steps": 3,
                                 "warmup_steps": 1, "prune_interval": 2, "final_steps": 2, "variant": "from0",
                                 "seed": 42} | scores | settings)


def test_the_pretrained_regime_warms_up_decays_without_rewinds_and_says_so(smoke):
    P = sanh_params(smoke, "movement", warmup_ratio=0.25)
    model, _, _, meta = study.prune(P, study.start_model(P))
    train = meta["training"]["train"]
    assert train["restarts"] == [] and train["warmup_ratio"] == 0.25
    assert meta["pruning"]["movement_scores"] == "trained" and not meta["pruning"]["lr_rewind"]
    assert meta["start"]["key"] == "pretrained"
    technique = study.technique(P, "gradual", "movement", 0.8)
    assert technique["scores"] == "trained" and technique["start"] == "pretrained" and not technique["lr_rewind"]
    assert study.run_name(P) == "tiny-movement-80-cubic-pertensor-pretrained-trained-from0-s42"


def test_settings_added_later_stay_out_of_the_cache_key_at_their_old_behaviour():
    before = set(PruningConfig().to_dict()) - {"selection", "movement_scores", "lr_rewind"}
    assert set(study.key_settings(PruningConfig())) == before
    assert study.key_settings(PruningConfig(**SANH))["movement_scores"] == "trained"


# --- the experiment files -------------------------------------------------------------------

def quick_run(name: str) -> Params:
    path = params.PARAMS_DIR / "experiments" / "03_obs" / name
    return params.resolve({"profile": "quick", "data_dir": None, **yaml.safe_load(path.read_text())}, "03_obs")


def test_the_pretrained_regime_files_run_movement_and_its_controls_alike_from_zero_over_three_epochs():
    runs = {m: quick_run(f) for m, f in FILES.items()}
    configs = {m: study.pruning_config(P) for m, P in runs.items()}
    same = {m: c.to_dict() | {"method": None, "movement_scores": None} for m, c in configs.items()}
    assert same["movement"] == same["magnitude"] == same["random"]
    assert {m: P.prune_start for m, P in runs.items()} == dict.fromkeys(FILES, "pretrained")
    cfg = configs["movement"]
    assert cfg.movement_scores == "trained" and cfg.targets[0] == 0.0 and cfg.schedule == "cubic"
    assert cfg.restarts == [] and cfg.prune_interval <= 10 and cfg.final_steps > 0
    assert cfg.plan.total_steps >= 3 * math.ceil(CONLL_EN_TRAIN / runs["movement"].batch_size)
    assert study.run_name(runs["movement"]) == "me5-small-movement-80-cubic-pertensor-pretrained-trained-from0-s42"
    techniques = {m: study.technique(P, "gradual", m, 0.8) for m, P in runs.items()}
    assert report.regime(techniques["movement"]) == report.PAPER
    assert report.regime(techniques["magnitude"]) == report.regime(techniques["random"]) == "from pretrained"
    movement_90 = quick_run("movement-90-cubic-pertensor-pretrained-trained-from0-s42.yaml")
    assert study.pruning_config(movement_90).to_dict() == cfg.to_dict() | {"sparsity": 0.9}


def test_movement_from_the_converged_model_is_labelled_not_applicable():
    for name in ("movement-80-cubic-s42.yaml", "movement-90-cubic-s42.yaml", "movement-80-cubic-pertensor-s42.yaml"):
        P = quick_run(name)
        technique = study.technique(P, "gradual", "movement", float(P.sparsity))
        assert report.regime(technique) == report.NOT_APPLICABLE
        assert report.label({"params": {"model": "me5-small"}, "technique": technique}).endswith(report.NOT_APPLICABLE)
    obs = quick_run("obs-80-cubic-s42.yaml")
    assert report.regime(study.technique(obs, "gradual", "obs", 0.8)) == report.PAPER


# --- the report: Table 3 reads runs made as the paper makes them ------------------------------

def aggregate(method: str, f1: float, **technique) -> dict:
    t = {"method": method, "sparsity": 0.8, "schedule": "cubic", "mode": "gradual", "group_size": 1, "kd": True,
         "selection": "global", "initial_sparsity": 0.6, "pruning_steps": 5} | technique
    return {"run": f"{method}-{f1}", "profile": "quick", "params": {"model": "tiny"}, "technique": t,
            "aggregate_of": ["x-s42"], "f1": {lang: {"dev": f1, "test": f1} for lang in ("en", "es", "nl")},
            "mls": {"dev": 0.0, "test": 0.0}}


SANH_T = dict(selection="per_tensor", start="pretrained", initial_sparsity=0.0, pruning_steps=93, variant="from0")
RECORDS = [aggregate("obs", 0.8), aggregate("magnitude", 0.7), aggregate("movement", 0.0, scores="accumulated"),
           aggregate("movement", 0.75, scores="trained", **SANH_T), aggregate("magnitude", 0.6, **SANH_T),
           aggregate("random", 0.4, **SANH_T), aggregate("random", 0.3)]


def test_table3_holds_the_paper_regime_and_the_rest_is_labelled_by_regime():
    ours = report.table3(RECORDS).xs("ours (quick)", level="source")
    assert sorted(ours.index) == ["tiny magnitude 80% cubic", "tiny movement 80% cubic per-tensor trained scores, "
                                  "from pretrained (from0)", "tiny obs 80% cubic", "tiny random 80% cubic"]
    others = report.other_settings(RECORDS)
    converged = "tiny movement 80% cubic, not applicable from a converged model"
    assert others.loc[converged, "regime"] == report.NOT_APPLICABLE
    assert set(others["regime"]) == {report.NOT_APPLICABLE, "from pretrained"} and len(others) == 3


def test_each_run_is_read_against_the_random_control_of_its_own_regime():
    gaps = report.against_random([r | {"aggregate_of": None} for r in RECORDS])
    sanh = "tiny magnitude 80% cubic per-tensor, from pretrained (from0)"
    assert gaps.loc[sanh, ("en", "mean")] == pytest.approx(0.2)
    assert gaps.loc["tiny magnitude 80% cubic", ("en", "mean")] == pytest.approx(0.4)


# --- diagnostics of accumulated scores on a converged model ---------------------------------

def constructed(seed: int = 0) -> tuple[dict, dict, dict]:
    """Weights, their importance (w^2 times a gradient scale) and movement scores whose size
    follows importance and whose sign is a coin flip, as at a converged model."""
    g = torch.Generator().manual_seed(seed)
    weights = {f"t{i}": nn.Parameter(torch.randn(64, 128, generator=g)) for i in range(3)}
    importance = {n: w.detach() ** 2 * torch.rand(w.shape, generator=g).add(0.5) for n, w in weights.items()}
    scores = {n: imp.sqrt() * torch.randn(imp.shape, generator=g).sign() for n, imp in importance.items()}
    return weights, importance, scores


def test_scores_with_random_signs_cut_about_half_of_the_most_important_weights():
    weights, importance, scores = constructed()
    removed = {name: diagnostics.top_removed(diagnostics.cut(weights, s, 0.1), importance)
               for name, s in diagnostics.control_scores(scores, weights, seed=1).items()}
    assert 0.35 < removed["movement"] < 0.65 and 0.35 < removed["movement, sign flipped"] < 0.65
    assert 0.35 < removed["|movement|, signs shuffled"] < 0.65
    assert removed["magnitude"] == 0.0 and 0.03 < removed["random"] < 0.2
    informative = {n: imp for n, imp in importance.items()}  # scores that do follow importance
    assert diagnostics.top_removed(diagnostics.cut(weights, informative, 0.1), importance) == 0.0
    signs = diagnostics.score_signs(scores, importance)
    assert 0.45 < signs["negative_share"] < 0.55 and signs["rank_corr_abs_importance"] > 0.99
    assert abs(signs["rank_corr_sign_importance"]) < 0.05


def test_controls_flip_the_sign_and_shuffle_signs_within_each_tensor():
    weights, _, scores = constructed()
    controls = diagnostics.control_scores(scores, weights, seed=3)
    for name, s in scores.items():
        assert torch.equal(controls["movement, sign flipped"][name], -s)
        shuffled = controls["|movement|, signs shuffled"][name]
        assert torch.equal(shuffled.abs(), s.abs()) and int((shuffled < 0).sum()) == int((s < 0).sum())
        assert not torch.equal(shuffled, s)
        assert torch.equal(controls["magnitude"][name], weights[name].detach() ** 2)


def test_lines_over_counts_rows_and_columns_cut_more_than_twice_as_deep():
    weights = {"w": nn.Parameter(torch.ones(4, 5))}
    masks = Masks(weights)
    masks.keep["w"][0] = False  # one whole row: 5 of 20 weights, a 25% cut
    # the row (100% > 50%) and no column (25% each): 1 of 4 + 5 lines
    assert diagnostics.lines_over(masks, 0.25) == pytest.approx(1 / 9)
    masks.keep["w"][0] = True
    masks.keep["w"][[0, 1, 2, 3], [0, 1, 2, 3]] = False  # a diagonal: every line at most 1/4 or 1/5
    assert diagnostics.lines_over(masks, 0.2) == 0


def test_moments_sum_movement_its_square_and_the_squared_gradient():
    w = nn.Parameter(torch.tensor([[1.0, -2.0, 0.5]]))
    grads = [torch.tensor([[1.0, 1.0, 2.0]]), torch.tensor([[3.0, -1.0, 2.0]])]

    class Source:
        def each(self, model, masks, round_index, consume):
            for g in grads:
                consume([g])

    found = diagnostics.moments(None, Masks({"w": w}), Source())
    torch.testing.assert_close(found.move["w"], torch.tensor([[-4.0, 0.0, -2.0]]))
    torch.testing.assert_close(found.importance({"w": w})["w"], torch.tensor([[5.0, 4.0, 1.0]]))
    # movement terms -1, -3 | 2, -2 | -1, -1: t-statistics |sum| / sqrt(n var) = 4 / sqrt(2), 0, large (no variance)
    snr = found.snr()["w"].reshape(-1)
    assert snr[0] == pytest.approx(4 / math.sqrt(2)) and snr[1] == 0 and snr[2] > 1e6


def test_rank_correlation_gives_ties_their_mean_rank():
    assert diagnostics.rank_correlation(torch.tensor([1.0, 2, 3, 4]), torch.tensor([1.0, 1, 2, 2])) == pytest.approx(
        4 / (2 * math.sqrt(5)))
    assert diagnostics.rank_correlation(torch.arange(10.0), -torch.arange(10.0) ** 3) == pytest.approx(-1.0)


def test_diagnose_measures_the_fine_tuned_baseline_and_the_report_shows_it(smoke, tiny_finetuned):
    found = study_diagnostics.diagnose(smoke, batches=6, sparsity=0.1)
    assert found["batches"] == 6 and set(found["criteria"]) == {
        "movement", "movement, sign flipped", "|movement|, signs shuffled", "magnitude", "random"}
    assert 0 <= found["scores"]["negative_share"] <= 1 and math.isfinite(found["scores"]["median_snr"])
    assert all(0 <= c["top_removed"] <= 1 and set(c["f1"]) == {"en", "es", "nl"} for c in found["criteria"].values())
    table = report.movement_diagnostics_table(found)
    assert list(table.index) == ["dense", *found["criteria"]] and table.loc["dense", "top_removed"] == 0
    assert len(report.movement_diagnostics_figure(found).data) == 3  # a panel each: top weights removed, units hit, F1
    assert study_diagnostics.load("smoke", smoke.results_dir) is None  # the benchmark has not written it here


def test_diagnose_trained_fine_tunes_with_scores_attached_then_cuts_the_plain_model(smoke, tiny_finetuned):
    found = study_diagnostics.diagnose(smoke, batches=4, sparsity=0.1)
    found["trained"] = study_diagnostics.diagnose_trained(smoke, steps=3, batches=4, sparsity=0.1)
    trained = found["trained"]
    assert trained["steps"] == 3 and set(trained["criteria"]) == set(found["criteria"])
    assert "median_snr" not in trained["scores"]  # trained scores are no sums of per-batch terms
    assert all(0 <= c["lines_over_2x"] <= 1 for c in trained["criteria"].values())
    assert -1 <= trained["scores"]["rank_corr_abs_importance"] <= 1
    assert set(report.movement_regimes(found)) == {report.CONVERGED, "pre-trained encoder, trained scores after 3 steps"}
    assert list(report.movement_scores_summary(found).columns) == list(report.movement_regimes(found))
    assert len(report.movement_diagnostics_figure(found).data) == 6  # three panels per regime
