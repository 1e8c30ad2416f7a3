import pytest

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.train import TrainConfig
from mmakit.study import baseline, cache


@pytest.fixture()
def parts(smoke):
    model, tok = baseline.fresh_model(smoke)
    train = tokenize_dataset(baseline.english_train(smoke), tok)
    return smoke.model_spec(), model, tok, train


def test_key_changes_with_every_determining_input(parts):
    spec, _, _, train = parts
    base = cache.cache_key(spec, train, TrainConfig(), 128)
    assert base == cache.cache_key(spec, train, TrainConfig(), 128)
    assert base != cache.cache_key(spec, train, TrainConfig(lr=1e-4), 128)
    assert base != cache.cache_key(spec, train, TrainConfig(seed=1), 128)
    assert base != cache.cache_key(spec, train.select(range(10)), TrainConfig(), 128)
    assert base != cache.cache_key(spec, train, TrainConfig(), 64)
    assert base != cache.cache_key(spec, train, TrainConfig(), 128, extra={"teacher": "x"})


def test_second_call_loads_instead_of_training(parts, tmp_path, monkeypatch):
    spec, model, tok, train = parts
    cfg = TrainConfig(epochs=0.1)
    folder, meta = cache.cached_fine_tune("k", model, tok, train, cfg, tmp_path)
    assert (folder / "mmakit.json").exists() and meta["steps"] >= 1
    monkeypatch.setattr(cache, "fine_tune", lambda *a, **k: pytest.fail("trained again"))
    assert cache.cached_fine_tune("k", model, tok, train, cfg, tmp_path)[1] == meta


def test_half_written_checkpoint_is_never_taken_as_complete(parts, tmp_path, monkeypatch):
    spec, model, tok, train = parts
    root = tmp_path / "checkpoints"
    (root / "k.tmp").mkdir(parents=True)  # left by a crash during saving
    (root / "k.partial").mkdir()  # left by an interrupted training run
    calls = []
    real = cache.fine_tune
    monkeypatch.setattr(cache, "fine_tune", lambda *a, **k: calls.append(1) or real(*a, **k))
    folder, _ = cache.cached_fine_tune("k", model, tok, train, TrainConfig(epochs=0.1), tmp_path)
    assert calls == [1] and folder == root / "k"
    assert not (root / "k.tmp").exists() and not (root / "k.partial").exists()
