import pytest

from mmakit.core.data import DataSourceError
from mmakit.study import params


def test_profile_values_are_overlaid_by_notebook_parameters(smoke):
    p = params.resolve({"profile": "smoke", "epochs": 7, "lr": None, "custom": None}, "nb")
    assert p.epochs == 7 and p.lr == smoke.lr and p.custom is None and p.notebook == "nb"


def test_every_profile_loads_and_validates():
    for name in params.PROFILES:
        params.validate(params.load_profile(name))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"method": "chance"}, "choose from obs, magnitude, movement, random"),
        ({"obs_build": "inverse"}, "choose from sherman-morrison, direct"),
        ({"kd": "yes"}, "kd=.yes. must be true or false"),
        ({"one_shot_damps": [0.0]}, "one_shot_damps has 0.0"),
        ({"sparsity": 1.0}, r"sparsity=1.0 must lie in \[0, 1\)"),
        ({"sparsity": -0.1}, r"must lie in \[0, 1\)"),
        ({"lr": 0}, "lr=0 must be a positive number"),
        ({"langs": ["de"]}, "allowed: en, es, nl"),
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
        ({"runtimes": "onnxruntime,tensorrt"}, "runtimes has tensorrt; allowed: onnxruntime, deepsparse"),
        ({"langs": "en,de"}, "langs has de; allowed: en, es, nl"),
        ({"batches": "1,x"}, "batches has x; each must be a positive integer"),
        ({"batches": "[1, 0]"}, "batches has 0; each must be a positive integer"),
        ({"one_shot_sparsities": "0.5,high"}, "one_shot_sparsities='0.5,high': 'high' is not a number"),
        ({"batches": "1,,4"}, "has an empty item"),
        ({"batches": "[1, 4"}, "is not a valid list"),
    ],
)
def test_bad_list_items_from_papermill_strings_name_the_valid_choices(given, message):
    with pytest.raises(ValueError, match=message):
        params.resolve({"profile": "smoke", **given}, "nb")
