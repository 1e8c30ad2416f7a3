"""The study runner: experiment files in dependency order, current experiments skipped,
papermill commands listed, records that no experiment produces reported."""
import pytest

from mmakit.study import code_version, params, runner
from mmakit.study.records import read_records


@pytest.fixture()
def experiments(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    (folder / "01_baselines").mkdir(parents=True)
    (folder / "01_baselines" / "tiny-s42.yaml").write_text("seed: 42\nepochs: 3\nspeed_probe_steps: 0\n")
    (folder / "03_obs").mkdir()
    (folder / "03_obs" / "a.yaml").write_text("method: magnitude\n")
    monkeypatch.setattr(runner, "EXPERIMENTS_DIR", folder)
    return folder


def test_jobs_follow_the_notebook_order_with_one_per_experiment_file(experiments, tmp_path):
    jobs = runner.plan("smoke", ["03", "01", "07"], results_dir=tmp_path / "none")
    assert [j.label for j in jobs] == ["01_baselines/tiny-s42", "03_obs/a", "07_report"]
    assert not any(j.current for j in jobs)
    listed = runner.command(jobs[0], "smoke")
    assert listed.startswith("papermill notebooks/01_baselines.ipynb outputs/notebooks/01_baselines.tiny-s42.smoke.ipynb")
    assert "-p experiment tiny-s42" in listed



def test_only_keeps_the_named_experiments(experiments, tmp_path):
    (experiments / "03_obs" / "b-80.yaml").write_text("method: magnitude\n")
    jobs = runner.plan("smoke", None, results_dir=tmp_path / "none", only=["b-*", "tiny-s42"])
    assert [j.label for j in jobs] == ["01_baselines/tiny-s42", "03_obs/b-80"]


@pytest.mark.notebook
def test_a_finished_experiment_is_skipped_until_forced_or_its_code_changes(experiments, work_dirs, tmp_path, monkeypatch):
    dirs = {k: str(v) for k, v in work_dirs.items()} | {"results_dir": str(tmp_path / "results")}
    runner.run_notebooks("smoke", ["01"], dirs, out_dir=tmp_path, use_experiments=True)
    records = read_records(dirs["results_dir"], "01_baselines")
    assert {r["run"] for r in records} == {"tiny-s42", "tiny"}  # the seed's record and the seed aggregate
    assert all(r["params"]["experiment"] == "tiny-s42" for r in records)

    import papermill
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("a current experiment ran again"))
    assert runner.run_notebooks("smoke", ["01"], dirs, out_dir=tmp_path, use_experiments=True) == []
    [job] = runner.plan("smoke", ["01"], results_dir=dirs["results_dir"])
    assert job.current
    assert not runner.plan("smoke", ["01"], force=True, results_dir=dirs["results_dir"])[0].current
    (experiments / "01_baselines" / "tiny-s42.yaml").write_text("seed: 42\nepochs: 4\nspeed_probe_steps: 0\n")
    assert not runner.plan("smoke", ["01"], results_dir=dirs["results_dir"])[0].current  # parameters changed
    (experiments / "01_baselines" / "tiny-s42.yaml").write_text("seed: 42\nepochs: 3\nspeed_probe_steps: 0\n")
    bumped = dict(code_version.VERSIONS) | {"fine-tune": (99, "")}
    monkeypatch.setattr(code_version, "VERSIONS", bumped)
    assert not runner.plan("smoke", ["01"], results_dir=dirs["results_dir"])[0].current  # code changed


def test_records_from_no_experiment_file_are_reported(experiments, tmp_path):
    from mmakit.study.records import make_record, write_record

    fields = dict(notebook="03_obs", profile="smoke", model="tiny", technique={"method": "obs"},
                  f1={}, mls={}, started="2026-01-01T00:00:00+00:00", seconds=1.0)
    write_record(make_record(run="from-a", params={"experiment": "a"}, **fields), tmp_path)
    write_record(make_record(run="by-hand", params={"experiment": None}, **fields), tmp_path)
    assert runner.orphans("smoke", tmp_path) == ["03_obs/by-hand"]


def test_every_experiment_file_resolves_and_names_the_record_it_writes():
    """Each params/experiments file validates on the quick profile; for 03, 04 and 06, where one
    file makes one record (one seed's), the file is named after that record."""
    from mmakit.study import combined, distillation, pruning

    for notebook in runner.available():
        for stem, values in runner.experiments(notebook).items():
            P = params.resolve({"profile": "quick", "data_dir": None, **values}, notebook)
            if notebook == "04_distillation":
                keep = distillation.student_config(P).keep(12)
                assert distillation.run_name(P, keep) == stem, (notebook, stem)
            if notebook == "03_obs" and P.prune_mode == "gradual":
                assert pruning.run_name(P) == f"{P.model}-{stem}", (notebook, stem)
            if notebook == "06_combined":
                assert combined.record_names(P, "exclusions")[0] == f"{P.model}-{stem}", (notebook, stem)


def test_a_parameter_only_other_notebooks_read_leaves_a_record_current():
    profile = params.load_profile("smoke")

    def record(notebook: str, **changed) -> dict:
        return {"profile": profile["profile"], "code_versions": code_version.versions_for(notebook),
                "params": profile | {"experiment": "x"} | changed}

    def current(notebook: str, **changed) -> bool:
        return runner.is_current(record(notebook, **changed), runner.Job(notebook, "x", {"experiment": "x"}), "smoke")

    assert current("01_baselines") and current("04_distillation")
    assert "obs_damp" in runner.foreign_params("01_baselines")
    assert current("01_baselines", obs_damp=1.0) and current("04_distillation", obs_damp=1.0)  # 03's setting
    assert not current("03_obs", obs_damp=1.0) and not current("06_combined", obs_damp=1.0)  # 06 runs 03's OBS
    assert not current("04_distillation", lr=1.0)  # the baseline's (01) setting
    assert not current("02_heads", baseline_seed=7)  # every notebook starts from that baseline


def test_a_pipeline_seeded_with_combine_seed_stays_current():
    """06 trains every step with `combine_seed` and records it as `seed`: its record is what the
    job writes, though the profile's seed differs; a different combine_seed is another run."""
    profile = params.load_profile("smoke")
    made = {"profile": profile["profile"], "code_versions": code_version.versions_for("06_combined"),
            "params": profile | {"experiment": "x", "combine_seed": 43, "seed": 43}}

    def current(combine_seed: int) -> bool:
        return runner.is_current(made, runner.Job("06_combined", "x", {"experiment": "x", "combine_seed": combine_seed}), "smoke")

    assert profile["seed"] != 43 and current(43) and not current(44)


def test_a_record_made_with_other_library_versions_is_stale_and_flagged(experiments, tmp_path):
    """The record names what made it; a checkpoint's cache key names the training libraries."""
    from mmakit.report import summary
    from mmakit.study import provenance
    from mmakit.study.records import make_record, write_record

    job = runner.plan("smoke", ["03"], results_dir=tmp_path)[0]
    record = make_record(notebook="03_obs", run="a", profile="smoke", model="tiny", technique={"method": "magnitude"},
                         params=params.load_profile("smoke") | {"experiment": "a", "method": "magnitude"}, f1={}, mls={},
                         started="2026-01-01T00:00:00+00:00", seconds=1.0)
    assert runner.is_current(record, job, "smoke") and summary.other_stack(record) == ""
    installed = provenance.library_versions()["transformers"]
    older = record | {"env": record["env"] | {"transformers": "5.0.0"}}
    assert not runner.is_current(older, job, "smoke")
    assert summary.other_stack(older) == f"transformers 5.0.0 (installed {installed})"
    write_record(older, tmp_path)
    assert summary.summary([older])["other libraries"].iloc[0].startswith("transformers 5.0.0")
    assert set(provenance.training_libraries()) == {"torch", "transformers", "accelerate"}


def test_a_checkpoint_made_with_other_training_libraries_is_not_reused(smoke, monkeypatch):
    from mmakit.core.train import TrainConfig
    from mmakit.study import cache, common, provenance

    train, cfg = common.english_train(smoke), TrainConfig(epochs=1)
    key = cache.cache_key(smoke.model_spec(), train, cfg, smoke.max_length)
    assert cache.cache_key(smoke.model_spec(), train, cfg, smoke.max_length) == key
    monkeypatch.setattr(provenance, "library_versions", lambda: {"torch": "0", "transformers": "0", "accelerate": "0"})
    assert cache.cache_key(smoke.model_spec(), train, cfg, smoke.max_length) != key


def test_a_run_rewriting_its_outputs_does_not_make_the_code_dirty(tmp_path, monkeypatch):
    import subprocess

    from mmakit.study import provenance

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "record.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    (tmp_path / "outputs" / "record.json").write_text('{"f1": 0.9}')
    assert provenance.code_state()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.code_state()["dirty"] is True


def test_widget_state_is_dropped_from_executed_notebooks(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"a": {}}}}
    nbformat.write(nb, tmp_path / "run.ipynb")
    assert runner.strip_widget_state(tmp_path / "run.ipynb") and not runner.strip_widget_state(tmp_path / "run.ipynb")
    assert "widgets" not in nbformat.read(tmp_path / "run.ipynb", as_version=4).metadata
