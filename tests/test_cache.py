import os
import subprocess
import sys

import pytest
import torch

from mmakit.core import models
from mmakit.core.alignment import tokenize_dataset, tokenizer_fingerprint
from mmakit.core.models import train_wordpiece
from mmakit.core.paths import REPO
from mmakit.core.train import TrainConfig
from mmakit.study import cache, common
from tests.conftest import FIXTURES


@pytest.fixture()
def parts(smoke):
    model, tok = common.fresh_model(smoke)
    train = tokenize_dataset(common.english_train(smoke), tok)
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


def test_a_model_folder_rebuilt_byte_for_byte_elsewhere_keeps_its_fingerprint(tmp_path):
    first, second = tmp_path / "a", tmp_path / "elsewhere" / "b"
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"weights")
        (folder / "config.json").write_text("{}")
    os.utime(second / "model.safetensors", (1, 1))  # rebuilt at another time

    def fingerprints() -> list[dict]:
        return [models.source_fingerprint(models.ModelSpec("m", str(folder))) for folder in (first, second)]

    assert fingerprints()[0] == fingerprints()[1]
    (second / "model.safetensors").write_bytes(b"weightz")
    assert fingerprints()[0] != fingerprints()[1]


def test_a_checkpoint_trained_on_another_cpu_model_is_not_reused(parts, monkeypatch):
    spec, _, _, train = parts
    here = cache.cache_key(spec, train, TrainConfig(), 128)
    monkeypatch.setattr(cache, "training_hardware", lambda: {"cpu": "another CPU", "gpu": None})
    assert cache.cache_key(spec, train, TrainConfig(), 128) != here


def test_second_call_loads_instead_of_training(parts, tmp_path, monkeypatch):
    _, model, tok, train = parts
    cfg = TrainConfig(epochs=0.1)
    folder, meta = cache.cached_fine_tune("k", model, tok, train, cfg, tmp_path)
    assert (folder / "mmakit.json").exists() and meta["steps"] >= 1
    monkeypatch.setattr(cache, "fine_tune", lambda *a, **k: pytest.fail("trained again"))
    assert cache.cached_fine_tune("k", model, tok, train, cfg, tmp_path)[1] == meta


def test_half_written_checkpoint_is_never_taken_as_complete(parts, tmp_path, monkeypatch):
    _, model, tok, train = parts
    root = tmp_path / "checkpoints"
    (root / "k.tmp").mkdir(parents=True)  # left by a crash during saving
    (root / "k.partial").mkdir()  # left by an interrupted training run
    calls = []
    real = cache.fine_tune
    monkeypatch.setattr(cache, "fine_tune", lambda *a, **k: calls.append(1) or real(*a, **k))
    folder, _ = cache.cached_fine_tune("k", model, tok, train, TrainConfig(epochs=0.1), tmp_path)
    assert calls == [1] and folder == root / "k"
    assert not (root / "k.tmp").exists() and not (root / "k.partial").exists()


def test_smoke_tokenizer_has_the_same_vocabulary_on_every_call(smoke):
    sentences = common.english_train(smoke)["tokens"]
    first, second = train_wordpiece(sentences, 1500), train_wordpiece(sentences, 1500)
    assert first.get_vocab() == second.get_vocab()
    assert tokenizer_fingerprint(first) == tokenizer_fingerprint(second)


def test_second_smoke_fine_tune_built_afresh_hits_the_cache(smoke, tiny_finetuned, monkeypatch):
    first_model, _, first_meta = tiny_finetuned
    common._english_train.cache_clear()  # data read again from the files
    built = []
    monkeypatch.setattr(models, "train_wordpiece", lambda *a, **k: built.append(1) or train_wordpiece(*a, **k))
    monkeypatch.setattr(cache, "fine_tune", lambda *a, **k: pytest.fail("trained again"))
    model, _, meta = common.fine_tuned(smoke)
    assert built == [1]  # a new tokenizer (and model) came from the tiny model's builder
    assert (meta["key"], meta["checkpoint"]) == (first_meta["key"], first_meta["checkpoint"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), first_model.state_dict().values()))


KEY_SCRIPT = """
from mmakit.core.alignment import tokenize_dataset
from mmakit.study import cache, common, params
P = params.resolve({"profile": "smoke"}, "tests")
seed = int(P.get("baseline_seed") or P.seed)
_, tok = common.fresh_model(P, seed=seed)
train = tokenize_dataset(common.english_train(P), tok, P.max_length)
print(cache.cache_key(P.model_spec(), train, common.train_config(P, seed=seed), P.max_length))
"""


def test_smoke_cache_key_is_the_same_in_new_processes(tiny_finetuned, tmp_path):
    runs = []
    for hash_seed in ("1", "2"):  # each process tokenizes into a cache of its own
        env = os.environ | {"PYTHONHASHSEED": hash_seed, "MMAKIT_CACHE_DIR": str(tmp_path / hash_seed),
                            "MMAKIT_DATA_DIR": str(FIXTURES)}  # the data the smoke fixture uses
        runs.append(subprocess.Popen([sys.executable, "-c", KEY_SCRIPT], env=env, cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    keys = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
        keys.append(out.strip().splitlines()[-1])
    assert keys == [tiny_finetuned[2]["key"]] * 2
