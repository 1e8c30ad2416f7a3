import copy
import math

import pytest
import torch

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import length_grouped_batches
from mmakit.core.train import TrainConfig, TrainHooks, fine_tune, lr_factor
from mmakit.study import common


def test_lr_linear_decay_and_cyclic_restarts():
    assert [lr_factor(s, 10, 0, [], "linear") for s in (0, 5, 9)] == pytest.approx([1.0, 0.5, 0.1])
    cyc = [lr_factor(s, 10, 0, [4], "linear") for s in range(10)]
    assert cyc[0] == 1.0 and cyc[4] == 1.0 and cyc[3] == pytest.approx(0.25) and cyc[9] == pytest.approx(1 / 6)
    assert lr_factor(0, 10, 2, [], "linear") == 0.5  # warm-up
    assert lr_factor(7, 10, 0, [], "constant") == 1.0


def test_length_grouped_batches_cover_every_sentence_once():
    lengths = [i % 37 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=1)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches != length_grouped_batches(lengths, 16, seed=2)


def test_bad_train_config_is_rejected():
    with pytest.raises(ValueError, match="choose from linear, constant"):
        TrainConfig(schedule="cosine")


def _tiny(smoke):
    model, tok = common.fresh_model(smoke)
    return model, tok, tokenize_dataset(common.english_train(smoke), tok)


def test_fine_tune_lowers_loss_and_calls_hooks(smoke):
    model, tok, train = _tiny(smoke)
    seen = []

    class Count(TrainHooks):
        def after_step(self, step, model):
            seen.append(step)

    log = fine_tune(model, train, TrainConfig(epochs=2, lr=2e-3, batch_size=16), tok.pad_token_id, hooks=[Count()])
    assert seen == list(range(1, log.steps + 1))
    assert sum(log.losses[-3:]) / 3 < sum(log.losses[:3]) / 3


def test_frozen_word_embeddings_stay_unchanged(smoke):
    model, tok, train = _tiny(smoke)
    before = model.get_input_embeddings().weight.detach().clone()
    fine_tune(model, train, TrainConfig(epochs=0.2, freeze_word_embeddings=True), tok.pad_token_id)
    assert torch.equal(before, model.get_input_embeddings().weight)


def test_interrupted_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(smoke, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, lr=2e-3)
    initial, tok, train = _tiny(smoke)
    assert initial.config.hidden_dropout_prob > 0  # so the random state of dropout has to be restored too
    per_epoch = math.ceil(len(train) / cfg.batch_size)
    every, stop_at = per_epoch + 2, per_epoch + 4  # checkpoint and interruption in the second epoch
    straight = copy.deepcopy(initial)
    straight_log = fine_tune(straight, train, cfg, tok.pad_token_id)

    class Stop(TrainHooks):
        def after_step(self, step, model):
            if step == stop_at:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fine_tune(copy.deepcopy(initial), train, cfg, tok.pad_token_id, hooks=[Stop()], checkpoint_dir=tmp_path,
                  checkpoint_every=every)
    assert (tmp_path / "progress.pt").exists()
    steps = []

    class Record(TrainHooks):
        def after_step(self, step, model):
            steps.append(step)

    resumed = copy.deepcopy(initial)  # a new process starts again from the initial model
    log = fine_tune(resumed, train, cfg, tok.pad_token_id, hooks=[Record()], checkpoint_dir=tmp_path,
                    checkpoint_every=every)
    assert steps == list(range(every + 1, straight_log.steps + 1))
    assert log.losses == straight_log.losses
    expected = straight.state_dict()
    assert [name for name, value in resumed.state_dict().items() if not torch.equal(expected[name], value)] == []


def test_bf16_training_keeps_fp32_weights_and_learns(smoke):
    model, tok, train = _tiny(smoke)
    log = fine_tune(model, train, TrainConfig(epochs=2, lr=2e-3, batch_size=16, precision="bf16"), tok.pad_token_id,
                    device="cpu")
    assert log.precision == "bf16" and log.device == "cpu" and log.processes == 1
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert sum(log.losses[-3:]) / 3 < sum(log.losses[:3]) / 3
    batch = {k: torch.tensor([v]) for k, v in train[0].items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():  # no autocast wrapper left on the instance: its forward is the class's, in fp32
        assert torch.equal(model(**batch).logits, type(model).forward(model, **batch).logits)


def test_auto_precision_resolves_to_what_the_hardware_runs(monkeypatch):
    from mmakit.core import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: ["avx512f", "avx512_bf16"])
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: ["avx2"])
    assert hardware.resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="fp16 autocast needs a GPU"):
        hardware.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="choose from fp32, bf16, fp16, auto"):
        hardware.resolve_precision("int4")


def test_fp16_on_a_cpu_fails_with_the_precision_named(smoke):
    model, tok, train = _tiny(smoke)
    with pytest.raises(ValueError, match="precision fp16 on device cpu"):
        fine_tune(model, train, TrainConfig(epochs=0.1, precision="fp16"), tok.pad_token_id, device="cpu")
