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
        ({"method": "random"}, "choose from obs, magnitude, movement"),
        ({"sparsity": 1.0}, r"sparsity=1.0 must lie in \[0, 1\)"),
        ({"sparsity": -0.1}, r"must lie in \[0, 1\)"),
        ({"lr": 0}, "lr=0 must be a positive number"),
        ({"langs": ["de"]}, "allowed: en, es, nl"),
        ({"baselines": ["bert-large"]}, "not among the profile's models: tiny"),
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
