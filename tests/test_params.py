import pytest

from mmakit.core.data import DataSourceError
from mmakit.study import params
from tests.conftest import FIXTURES


def test_profile_values_are_overlaid_by_notebook_parameters(smoke):
    p = params.resolve({"profile": "smoke", "epochs": 7, "lr": None, "run_name": None}, "nb")
    assert p.epochs == 7 and p.lr == smoke.lr and p.run_name is None and p.notebook == "nb"


def test_every_profile_loads_and_validates():
    for name in params.PROFILES:
        params.validate(params.load_profile(name))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"method": "chance"}, "choose from obs, magnitude, movement, random"),
        ({"obs_build": "inverse"}, "choose from sherman-morrison, direct"),
        ({"kd": "maybe"}, "kd='maybe' must be true or false"),
        ({"one_shot_damps": [0.0]}, r"one_shot_damps has 0.0, which must lie in \(0, inf\)"),
        ({"sparsity": 1.0}, r"sparsity=1.0 must lie in \[0, 1\)"),
        ({"sparsity": -0.1}, r"must lie in \[0, 1\)"),
        ({"lr": 0}, r"lr=0 must lie in \(0, inf\)"),
        ({"epochs": "three"}, "epochs='three' must be a number"),
        ({"batch_size": 2.5}, "batch_size=2.5 must be an integer"),
        ({"group_size": "3"}, "group_size=3 is not valid; choose from 1, 4"),
        ({"unlabelled_langs": ["de"]}, "unlabelled_langs has 'de', which is not valid; choose from es, nl"),
        ({"baselines": ["bert-large"]}, "not among the profile's models: tiny"),
        ({"selection": "layerwise"}, "choose from global, per_tensor"),
        ({"variant": "From 10%"}, "lower-case letters, digits or _"),
    ],
)
def test_bad_values_fail_with_the_valid_choices(given, message):
    with pytest.raises(ValueError, match=message):
        params.resolve({"profile": "smoke", **given}, "nb")


def test_unknown_profile_and_model_and_data_dir():
    with pytest.raises(ValueError, match="unknown profile 'fast'; choose from .*quick"):
        params.resolve({"profile": "fast"}, "nb")
    with pytest.raises(ValueError, match="unknown model 'xlm'; this profile defines: tiny"):
        params.resolve({"profile": "smoke"}, "nb").model_spec("xlm")
    with pytest.raises(DataSourceError, match="does not exist"):
        params.resolve({"profile": "smoke", "data_dir": "/no/data"}, "nb")


def test_missing_quick_model_folder_says_how_to_build_it(tmp_path, monkeypatch):
    from mmakit.core.models import load_token_classifier

    spec = params.resolve({"profile": "quick", "model_dir": str(tmp_path / "none")}, "nb").model_spec()
    with pytest.raises(FileNotFoundError, match="get-me5-small"):
        load_token_classifier(spec)


def test_attribute_access_lists_known_names(smoke):
    with pytest.raises(AttributeError, match="known: .*epochs"):
        smoke.epochz


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"runtimes": "onnxruntime"}, ["onnxruntime"]),  # papermill -p runtimes onnxruntime
        ({"runtimes": "onnxruntime, deepsparse"}, ["onnxruntime", "deepsparse"]),
        ({"batches": "1,4"}, [1, 4]),
        ({"batches": 4}, [4]),  # papermill reads -p batches 4 as an int
        ({"batches": "[1, 4]"}, [1, 4]),  # a YAML/JSON list as a string
        ({"seeds": "42,43"}, [42, 43]),
        ({"one_shot_sparsities": "0.5,0.7"}, [0.5, 0.7]),  # a list of floats in the profile
        ({"one_shot_sparsities": 0.5}, [0.5]),
        ({"eval_splits": "dev"}, ["dev"]),
        ({"quant_methods": "[dynamic, data-free]"}, ["dynamic", "data-free"]),
        ({"quant_exclude": ""}, []),
        ({"baselines": "tiny"}, ["tiny"]),  # a list in the profile, checked against its models
        ({"batches": [2, 8]}, [2, 8]),  # a real list is kept as given
    ],
)
def test_list_parameters_from_papermill_strings(given, expected):
    (key, _), = given.items()
    p = params.resolve({"profile": "smoke", **given}, "nb")
    assert p[key] == expected
    assert all(type(x) is type(y) for x, y in zip(p[key], expected))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"runtimes": "onnxruntime,tensorrt"}, "runtimes has 'tensorrt', which is not valid; choose from onnxruntime, de"),
        ({"batches": "1,x"}, "batches='1,x': 'x' is not an integer"),
        ({"batches": "[1, 0]"}, r"batches has 0, which must lie in \(0, inf\)"),
        ({"one_shot_sparsities": "0.5,high"}, "one_shot_sparsities='0.5,high': 'high' is not a number"),
        ({"batches": "1,,4"}, "has an empty item"),
        ({"batches": "[1, 4"}, "is not a valid list"),
    ],
)
def test_bad_list_items_from_papermill_strings_name_the_valid_choices(given, message):
    with pytest.raises(ValueError, match=message):
        params.resolve({"profile": "smoke", **given}, "nb")


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("freeze_word_embeddings", "false", False),  # papermill -p freeze_word_embeddings false: a string
        ("per_channel", "no", False),
        ("kd", "0", False),
        ("teacher", "True", True),
        ("quantize_embeddings", 1, True),
        ("epochs", "3", 3),
        ("qat_epochs", "0.5", 0.5),
        ("obs_damp", "1e-9", 1e-9),  # YAML reads 1e-9 (no dot) as a string
        ("batch_size", 32.0, 32),
        ("batches", "1,4", [1, 4]),
        ("student_layers", "[1, 3]", [1, 3]),
        ("seq_len", "null", None),
        ("run_name", "None", "None"),  # a string parameter keeps its text
    ],
)
def test_coerce_reads_papermill_strings_by_the_tables_type(name, given, expected):
    value = params.coerce(name, given)
    assert value == expected and type(value) is type(expected)


def test_false_from_papermill_reaches_the_run_as_false():
    p = params.resolve({"profile": "quick", "freeze_word_embeddings": "false", "per_channel": "false",
                        "data_dir": str(FIXTURES)}, "01_baselines")
    assert p.freeze_word_embeddings is False and p.per_channel is False


def test_a_misspelt_parameter_fails_naming_the_closest():
    with pytest.raises(ValueError, match="unknown parameter 'sparsty' in 03_obs; did you mean sparsity"):
        params.resolve({"profile": "smoke", "sparsty": 0.5}, "03_obs")
    with pytest.raises(ValueError, match="unknown parameter 'zzz'"):
        params.coerce("zzz", 1)


def test_the_notebooks_own_variables_are_not_taken_for_parameters():
    """Re-running the resolve cell in JupyterLab after later cells ran leaves their globals."""
    p = params.resolve({"profile": "smoke", "records": [{"run": "x"}], "P": params.Params()}, "07_report")
    assert "records" not in p


def test_unknown_keys_in_a_profile_or_an_experiment_file_fail(tmp_path, monkeypatch):
    from mmakit.study import runner

    profile = tmp_path / "mine.yaml"
    profile.write_text("profile: mine\nsparsty: 0.5\n")
    with pytest.raises(ValueError, match=f"unknown parameter 'sparsty' in {profile}; did you mean sparsity"):
        params.load_profile(str(profile))
    (tmp_path / "03_obs").mkdir()
    (tmp_path / "03_obs" / "typo.yaml").write_text("method: obs\nobs_dmap: 1.0e-9\n")
    monkeypatch.setattr(runner, "EXPERIMENTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="unknown parameter 'obs_dmap' in .*typo.yaml; did you mean obs_damp"):
        runner.experiments("03_obs")


def test_every_experiment_file_names_only_parameters_and_valid_values():
    from mmakit.study import runner

    for notebook in runner.available():
        for values in runner.experiments(notebook).values():
            params.validate(values | {"models": params.load_profile("quick")["models"]})


def test_parameters_cells_are_the_tables():
    """A parameter is declared once, in mmakit/study/param_table.py; `python -m mmakit params
    --write-cells` rewrites the cells after a change."""
    assert params.sync_parameters_cells() == []


def test_the_reference_lists_every_parameter_once():
    from mmakit.study import param_table

    text = param_table.reference_markdown()
    assert all(text.count(f"| `{p.name}` |") == 1 for p in param_table.TABLE)
