"""04's task-agnostic stage: the loss (hidden-state MSE of mapped layers, the last layer's
attention and value relations), the generic text it reads, its exact step budget, its held-out
curve and a resume that ends where an uninterrupted stage ends; the data setting it gives."""
import math

import pytest
import torch

from mmakit.core.batching import iterate
from mmakit.core.data import GENERIC_LANGUAGES, DataSourceError, load_generic_text, load_split
from mmakit.core.models import build_tiny
from mmakit.core.train import TrainConfig, fine_tune, total_steps
from mmakit.study import distillation, params
from mmakit.study.data_setting import data_setting
from mmakit.techniques.distillation import (
    HeldOutCurve,
    TaskAgnosticConfig,
    TaskAgnosticHook,
    drop_layers,
    freeze_outside_encoder,
    held_out_losses,
    tokenize_text,
)
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def tiny():
    """(2-layer teacher, its tokenizer, tokenized fixture generic text: training, held-out)."""
    words = load_split("en", "train", FIXTURES)["tokens"]
    teacher, tok = build_tiny(words, seed=0)
    text = [s for lang in GENERIC_LANGUAGES for s in load_generic_text(lang, data_dir=FIXTURES)]
    return words, teacher.eval(), tok, tokenize_text(text[:-20], tok), tokenize_text(text[-20:], tok)


def _smoke(work_dirs, **given) -> params.Params:
    return params.resolve({"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()},
                           "generic_text_dir": str(FIXTURES / "generic_text"), **given}, "04_distillation")


def test_the_loss_is_zero_for_the_teachers_own_layers_and_not_for_fewer(tiny):
    _, teacher, tok, train, _ = tiny
    batch = next(iterate(train, [list(range(8))], tok.pad_token_id))
    same = TaskAgnosticHook(teacher, {0: 0, 1: 1})
    with torch.no_grad():
        parts = same.losses(drop_layers(teacher, [0, 1]).eval(), batch)
        assert float(parts["hidden"]) < 1e-10 and float(parts["attention"]) < 1e-6
        top = TaskAgnosticHook(teacher, {0: 1}).losses(drop_layers(teacher, [1]).eval(), batch)
    assert float(top["hidden"]) > 1e-6  # its one layer sees the embeddings, not the teacher's first layer
    assert same.teacher_calls == 1
    assert all(p.requires_grad for p in teacher.parameters())  # the caller's teacher is left as it was
    with pytest.raises(ValueError, match="one of them positive"):
        TaskAgnosticConfig(hidden_weight=0, attention_weight=0)


def test_a_student_learns_the_teachers_hidden_states_on_generic_text(tiny):
    words, teacher, tok, train, held_out = tiny
    student, _ = build_tiny(words, seed=1, num_hidden_layers=1)  # same vocabulary, other weights
    hook = TaskAgnosticHook(teacher, {0: 1})
    before = held_out_losses(student, hook, held_out, tok.pad_token_id)
    freeze_outside_encoder(student)
    fine_tune(student, train, TrainConfig(epochs=1, lr=2e-3, batch_size=16), tok.pad_token_id, hooks=[hook])
    student.train()
    after = held_out_losses(student, hook, held_out, tok.pad_token_id)
    assert student.training  # scoring leaves the training mode as it was
    assert after["hidden"] < 0.6 * before["hidden"]
    assert not student.classifier.weight.requires_grad
    assert student.bert.encoder.layer[0].output.dense.weight.requires_grad


def test_the_held_out_curve_scores_every_n_steps_and_the_last_and_keeps_its_points(tiny, tmp_path):
    _, teacher, tok, train, held_out = tiny
    student = drop_layers(teacher, [1])
    hook = TaskAgnosticHook(teacher, {0: 1})
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=16)
    total = total_steps(len(train), cfg)
    curve = HeldOutCurve(hook, held_out, tok.pad_token_id, every=5, total=total, path=tmp_path / "curve.json")
    fine_tune(student, train, cfg, tok.pad_token_id, hooks=[hook, curve])
    steps = [p["step"] for p in curve.points]
    assert steps == [*range(5, total, 5), total] and total % 5
    again = HeldOutCurve(hook, held_out, tok.pad_token_id, every=5, total=total, path=tmp_path / "curve.json")
    assert again.points == curve.points and again.scored(5) and not again.scored(0)


def test_held_out_points_are_scored_under_the_runs_precision_before_and_while_it_trains(tiny):
    words, teacher, tok, train, held_out = tiny
    student, _ = build_tiny(words, seed=1, num_hidden_layers=1)
    hook = TaskAgnosticHook(teacher, {0: 1})
    cfg = TrainConfig(epochs=0.5, lr=1e-12, batch_size=16, precision="bf16")  # the weights do not move
    total = total_steps(len(train), cfg)
    curve = HeldOutCurve(hook, held_out, tok.pad_token_id, every=3, total=total, precision="bf16")
    curve.score(0, student)  # before the loop autocasts the student's forward
    fine_tune(student, train, cfg, tok.pad_token_id, hooks=[hook, curve], device="cpu")
    assert len(curve.points) == 3 and all(p | {"step": 0} == curve.points[0] for p in curve.points)
    assert held_out_losses(student, hook, held_out, tok.pad_token_id)["hidden"] != curve.points[0]["hidden"]  # fp32


def test_the_stage_takes_exactly_its_step_budget(work_dirs):
    P = _smoke(work_dirs)
    # 127 / 7594 * 7594 > 127 in floating point: 243,008 sentences at batch 32 would give one step too many
    for steps, sentences in ((127, 243_008), (253, 121_504), (4000, 243_498), (7, 70), (7, 7), (30_000, 244_798)):
        for batch in (16, 32):
            cfg = distillation.stage_config(params.Params(P | {"generic_steps": steps, "batch_size": batch}), sentences)
            assert total_steps(sentences, cfg) == steps and cfg.batch_size == batch


def test_generic_text_holds_out_the_first_sentences_of_each_language(work_dirs, tiny):
    _, _, tok, _, _ = tiny
    P = _smoke(work_dirs, generic_langs="en,de")
    train, held_out, counts = distillation.generic_text(P, tok)
    en, de = (load_generic_text(lang, data_dir=FIXTURES) for lang in ("en", "de"))
    n = P.generic_held_out
    assert counts == {"en": len(en) - n, "de": len(de) - n} and len(held_out) == 2 * n
    assert held_out["input_ids"] == tokenize_text(en[:n] + de[:n], tok)["input_ids"]
    assert train["input_ids"] == tokenize_text(en[n:] + de[n:], tok)["input_ids"]
    with pytest.raises(ValueError, match="generic_held_out=40"):
        distillation.generic_text(params.Params(P | {"generic_held_out": 40}), tok)


def test_missing_generic_text_names_the_option(work_dirs, tmp_path, monkeypatch):
    monkeypatch.delenv("MMAKIT_DATA_DIR", raising=False)
    with pytest.raises(DataSourceError, match="generic_text_dir"):
        load_generic_text("es")
    with pytest.raises(DataSourceError, match=r"generic_text_dir.*get-generic-text"):
        load_generic_text("es", data_dir=tmp_path)  # a data folder without generic_text/
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "en.txt").write_text("One sentence.\n\n")
    assert load_generic_text("en", tmp_path / "mine") == ["One sentence."]
    with pytest.raises(DataSourceError, match=r"nl\.txt not found.*generic_text_dir"):
        load_generic_text("nl", tmp_path / "mine")
    with pytest.raises(ValueError, match="choose from en, es, nl, de, fr"):
        load_generic_text("it", tmp_path / "mine")
    with pytest.raises(ValueError, match="generic_langs has 'it', which is not valid"):
        _smoke(work_dirs, generic_langs="en,it")
    P = _smoke(work_dirs, generic_langs="es", generic_text_dir=str(tmp_path / "none"))
    with pytest.raises(DataSourceError, match="set the generic_text_dir parameter"):
        distillation.distil(P)


def test_a_stage_needs_a_student_cut_from_the_model(work_dirs):
    P = _smoke(work_dirs, generic_langs="en", student_model="tiny")
    with pytest.raises(ValueError, match="leave student_model unset"):
        distillation.distil(P)


def _stage(P: params.Params) -> tuple[torch.nn.Module, dict]:
    student, tokenizer, keep = distillation.make_run_student(P)
    return distillation.task_agnostic_student(P, student, tokenizer, keep)


def test_an_interrupted_stage_resumes_to_the_uninterrupted_result(work_dirs, tmp_path, monkeypatch):
    given = {"generic_langs": "en,es", "generic_steps": 6, "generic_eval_every": 2}
    straight, straight_meta = _stage(_smoke(work_dirs, **given, cache_dir=str(tmp_path / "a")))
    P = _smoke(work_dirs, **given, cache_dir=str(tmp_path / "b"))
    score = HeldOutCurve.after_step

    def cut(self, step, model):
        if step == 5:  # after the checkpoint of step 4
            raise KeyboardInterrupt
        score(self, step, model)

    monkeypatch.setattr(HeldOutCurve, "after_step", cut)
    with pytest.raises(KeyboardInterrupt):
        _stage(P)
    partial = next((tmp_path / "b" / "checkpoints").glob("*.partial"))
    assert (partial / "progress.pt").exists() and (partial / "held_out.json").exists()
    monkeypatch.undo()
    resumed, meta = _stage(P)
    assert meta["key"] == straight_meta["key"] and meta["steps"] == 6 and not partial.exists()
    assert [p["step"] for p in meta["curve"]] == [0, 2, 4, 6] and meta["curve"][0]["train"] is None
    for a, b in zip(meta["curve"], straight_meta["curve"]):
        assert a == pytest.approx(b)
    expected = straight.state_dict()
    assert [k for k, v in resumed.state_dict().items() if not torch.equal(v, expected[k])] == []
    again, cached = _stage(P)  # from the cache: nothing trains
    assert cached["wall_s"] == meta["wall_s"] and math.isfinite(cached["curve"][-1]["held_out"])


@pytest.mark.parametrize(("notebook", "given", "setting"), [
    ("04_distillation", {"generic_langs": ["en"]}, "english-only"),
    ("04_distillation", {"generic_langs": ["en", "de", "fr"]}, "generic-multilingual"),
    ("04_distillation", {"generic_langs": ["en", "es"], "unlabelled_langs": ["es"]}, "target-unlabelled"),
    ("06_combined", {"combine_student": 6, "combine_generic_langs": ["en", "es", "nl", "de", "fr"]},
     "generic-multilingual"),
    ("06_combined", {"combine_student": None, "combine_generic_langs": ["es"]}, "english-only"),  # no student, no stage
    ("03_obs", {"generic_langs": ["es"]}, "english-only"),
])
def test_generic_text_in_other_languages_is_its_own_data_setting(notebook, given, setting):
    assert data_setting(notebook, given) == setting


def test_a_staged_students_name_says_its_languages(work_dirs):
    P = _smoke(work_dirs, generic_langs="en,es,nl,de,fr")
    assert distillation.run_name(P, [1]) == "tiny-L1-generic_en_es_nl_de_fr-kd-s42"
    assert distillation.technique(P, [1])["generic_langs"] == ["en", "es", "nl", "de", "fr"]
