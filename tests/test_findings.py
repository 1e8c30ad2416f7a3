"""The paper's findings judged from records: a difference counts only beyond twice its noise."""
from mmakit.report import findings


def aggregate(notebook: str, technique: dict, mls_test: float, sd: float | None, en: float = 0.85) -> dict:
    return {"notebook": notebook, "run": str(technique), "technique": technique, "aggregate_of": ["a", "b"],
            "mls": {"test": mls_test}, "mls_std": {"test": sd}, "f1": {"en": {"test": en}}, "params": {}}


def pruned(method: str, mls_test: float, sd: float | None, schedule: str = "cubic", sparsity: float = 0.8) -> dict:
    technique = {"mode": "gradual", "method": method, "sparsity": sparsity, "schedule": schedule, "group_size": 1,
                 "kd": True}
    return aggregate("03_obs", technique, mls_test, sd)


BASELINE = aggregate("01_baselines", {"method": "fine-tune"}, -0.12, 0.002)


def test_judge_needs_twice_the_noise():
    assert findings.judge(0.05, 0.02) == findings.CONFIRMED
    assert findings.judge(0.03, 0.02) == findings.OPEN
    assert findings.judge(-0.05, 0.02) == findings.REFUTED
    assert findings.judge(0.5, None) == findings.OPEN


def test_obs_against_magnitude_confirmed_refuted_or_open_by_the_seed_spread():
    records = [BASELINE, pruned("obs", -0.4, 0.02), pruned("magnitude", -1.2, 0.03)]
    table = findings.findings(records)
    assert table.loc["OBS keeps es/nl far better than magnitude and movement (same sparsity)", "verdict"] == "confirmed"
    close = [BASELINE, pruned("obs", -0.40, 0.05), pruned("magnitude", -0.45, 0.05)]
    assert findings.findings(close).iloc[0]["verdict"] == "open"  # 0.05 apart, 2 sd = 0.10
    worse = [BASELINE, pruned("obs", -0.9, 0.01), pruned("magnitude", -0.4, 0.01)]
    assert findings.findings(worse).iloc[0]["verdict"] == "refuted"


def test_cubic_against_linear_and_missing_runs_stay_open():
    records = [BASELINE, pruned("obs", -0.5, 0.01, "cubic", 0.9), pruned("obs", -0.8, 0.01, "linear", 0.9)]
    table = findings.findings(records)
    assert table.loc["A cubic sparsity schedule beats a linear one at the end", "verdict"] == "confirmed"
    assert table.loc["Pruning + QAT adds nothing beyond its parts", "verdict"] == "open"
    assert set(table["verdict"]) <= {"confirmed", "refuted", "open"}


def test_pruning_plus_qat_is_judged_against_the_pruned_runs_seed_spread():
    qat = {"notebook": "05_quantization", "run": "qat", "technique": {"method": "qat", "int8": True},
           "mls": {"test": -0.13}, "mls_vs_fp32": {"test": -0.01}}

    def combined(mls_test: float) -> dict:
        return {"notebook": "06_combined", "run": "obs90-q", "mls": {"test": mls_test},
                "technique": {"method": "combined", "coverage": "exclusions", "sparsity": 0.9}}

    finding = "Pruning + QAT adds nothing beyond its parts"
    parts = [BASELINE, pruned("obs", -0.41, 0.03, "cubic", 0.9), qat]
    assert findings.findings(parts + [combined(-0.45)]).loc[finding, "verdict"] == "confirmed"  # 0.03 off, 2 sd 0.06
    assert findings.findings(parts + [combined(-0.60)]).loc[finding, "verdict"] == "refuted"


def test_quantization_is_judged_by_the_spread_of_its_effect_over_baseline_seeds():
    def quantized(method: str, change: float) -> dict:
        return {"notebook": "05_quantization", "run": f"{method}{change}", "technique": {"method": method, "int8": True},
                "mls": {"test": -0.12 + change}, "mls_vs_fp32": {"test": change}}

    finding = "Quantization barely touches mls"
    verdict = lambda *changes: findings.findings([BASELINE, *(quantized("static", c) for c in changes)]).loc[finding, "verdict"]
    assert verdict(-0.003) == "confirmed"  # one seed: within 2 sd of the baseline (0.004)
    assert verdict(-0.006) == "refuted"
    assert verdict(-0.006, 0.004, 0.0) == "confirmed"  # the effect scatters around zero over seeds
    assert verdict(-0.006, -0.007, -0.005) == "refuted"  # a consistent loss
