"""04_distillation: layer-dropped students, word-level KD across tokenizers with teacher logits
computed once per sentence, and the notebook on the smoke profile."""
import copy
import json

import pytest
import torch
from transformers import (
    AutoModelForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

from mmakit.core.alignment import IGNORE, tokenize_dataset
from mmakit.core.batching import iterate
from mmakit.core.data import LABELS
from mmakit.core.models import build_tiny
from mmakit.core.train import TrainConfig, fine_tune
from mmakit.study import common, distillation, params, runner
from mmakit.study.records import read_records
from mmakit.techniques.distillation import (
    KDConfig,
    StudentConfig,
    WordKDHook,
    WordTeacher,
    drop_layers,
    encoder_layers,
    make_student,
)
from tests.test_notebooks import check_smoke_records


def test_layer_choices_pick_distilbert_layers_and_a_three_layer_student():
    assert StudentConfig(6).keep(12) == [1, 3, 5, 7, 9, 11]
    assert StudentConfig(3).keep(12) == [3, 7, 11]
    assert StudentConfig(6, "bottom").keep(12) == [0, 1, 2, 3, 4, 5]
    assert StudentConfig(2, "top").keep(12) == [10, 11]
    assert StudentConfig(1).keep(2) == [1]
    assert StudentConfig(layers=(5, 0)).keep(12) == [0, 5]
    with pytest.raises(ValueError, match="choose from alternate, bottom, top"):
        StudentConfig(6, "middle")
    with pytest.raises(ValueError):
        StudentConfig(layers=(12,)).keep(12)


def _bert(sentences, layers=4, vocab_size=1500):
    return build_tiny(sentences, seed=0, num_hidden_layers=layers, vocab_size=vocab_size)


def test_student_keeps_exactly_the_chosen_layers_and_round_trips(smoke, tmp_path):
    sentences = common.english_train(smoke)["tokens"]
    model, tok = _bert(sentences)
    student, keep = make_student(model, StudentConfig(2))
    assert keep == [1, 3] and student.config.num_hidden_layers == 2 and model.config.num_hidden_layers == 4
    for new, old in enumerate(keep):
        for a, b in zip(encoder_layers(student)[new].parameters(), encoder_layers(model)[old].parameters()):
            assert torch.equal(a, b)
    assert torch.equal(student.classifier.weight, model.classifier.weight)
    student.save_pretrained(tmp_path / "s")
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "s").eval()
    assert len(encoder_layers(loaded)) == 2
    batch = tok([["EU", "rejects", "German", "call"]], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(loaded(**batch).logits, student.eval()(**batch).logits, atol=1e-6)


def test_an_xlm_roberta_encoder_loses_layers_too():
    cfg = XLMRobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                           intermediate_size=64, num_labels=len(LABELS))
    student = drop_layers(XLMRobertaForTokenClassification(cfg), [0, 3])
    assert len(student.roberta.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    out = student(input_ids=torch.tensor([[0, 5, 6, 2]])).logits
    assert out.shape == (1, 4, len(LABELS))


@pytest.fixture(scope="module")
def two_tokenizers(smoke):
    """A 2-layer teacher and a 1-layer student whose WordPiece vocabularies differ (the fixture's
    120 sentences hold 50 words and 46 characters: 120 entries keep 23 of the words whole)."""
    raw = common.english_train(smoke)
    teacher, t_tok = _bert(raw["tokens"], layers=2, vocab_size=120)
    fine_tune(teacher, tokenize_dataset(raw, t_tok), TrainConfig(epochs=3, lr=2e-3, batch_size=16), t_tok.pad_token_id)
    base, s_tok = _bert(raw["tokens"], layers=2, vocab_size=1500)
    return raw, teacher.eval(), t_tok, drop_layers(base, [1]), s_tok


def test_word_level_kd_aligns_a_teacher_with_another_tokenizer(two_tokenizers):
    raw, teacher, t_tok, _, s_tok = two_tokenizers
    t_data, s_data = tokenize_dataset(raw, t_tok), tokenize_dataset(raw, s_tok)
    assert sum(len(x) for x in t_data["input_ids"]) > sum(len(x) for x in s_data["input_ids"])  # splits differ
    words = WordTeacher(teacher, t_data, t_tok.pad_token_id)
    hook = WordKDHook(words, s_data, KDConfig(hardness=0.5, temperature=2.0))
    i = 7
    ids = s_data["input_ids"][i]
    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
             "labels": torch.tensor([s_data["labels"][i]])}
    target, present = hook.aligned(batch, len(LABELS))
    enc = t_tok([raw[i]["tokens"]], is_split_into_words=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        direct = teacher(**enc).logits[0]
    first = {w: pos for pos, w in enumerate(t_data["word_index"][i]) if w != IGNORE}
    for pos, w in enumerate(s_data["word_index"][i]):
        if w == IGNORE or w not in first:  # not a first sub-token, or a word the teacher lost to truncation
            assert not present[0, pos]
        else:
            assert present[0, pos] and torch.allclose(target[0, pos], direct[first[w]], atol=1e-4)
    assert present.sum() == len(first)


def test_kd_loss_decreases_and_teacher_runs_once_per_sentence_over_two_epochs(two_tokenizers):
    raw, teacher, t_tok, student, s_tok = two_tokenizers
    student = copy.deepcopy(student)
    t_data, s_data = tokenize_dataset(raw, t_tok), tokenize_dataset(raw, s_tok)
    rows = []
    original = teacher.forward

    def counted(*args, **kwargs):
        rows.append(len(kwargs["input_ids"]))
        return original(*args, **kwargs)

    teacher.forward = counted
    try:
        words = WordTeacher(teacher, t_data, t_tok.pad_token_id)
        hook = WordKDHook(words, s_data, KDConfig(hardness=0.5, temperature=2.0))
        log = fine_tune(student, s_data, TrainConfig(epochs=2, lr=2e-3, batch_size=16), s_tok.pad_token_id,
                        hooks=[hook])
    finally:
        del teacher.forward
    unique = len({tuple(x) for x in s_data["input_ids"]})
    assert sum(rows) == unique == len(words.cache) and words.forward_calls == len(rows)
    assert len(rows) <= -(-len(s_data) // 16)  # every teacher call happened in the first epoch
    assert sum(log.losses[-3:]) / 3 < sum(log.losses[:3]) / 3


def test_teacher_logits_save_and_load(two_tokenizers, tmp_path):
    raw, teacher, t_tok, _, _ = two_tokenizers
    data = tokenize_dataset(raw.select(range(20)), t_tok)
    words = WordTeacher(teacher, data, t_tok.pad_token_id)
    words.save(tmp_path / "t.pt")
    again = WordTeacher(teacher, data, t_tok.pad_token_id)
    again.load(tmp_path / "t.pt")
    assert again.forward_calls == 0 and all(torch.equal(words.cache[i], again.cache[i]) for i in range(20))


def test_distillation_parameters_are_validated(work_dirs):
    base = {"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()}}
    with pytest.raises(ValueError, match="student_choice"):
        params.resolve(base | {"student_choice": "middle"}, "04_distillation")
    with pytest.raises(ValueError, match="student_layers"):
        params.resolve(base | {"student_layers": [-1]}, "04_distillation")
    with pytest.raises(ValueError, match="intermediate=True needs teacher=True"):
        distillation.kd_config(params.resolve(base | {"intermediate": True, "teacher": False}, "04_distillation"))
    assert params.resolve(base | {"teacher": "false"}, "04_distillation").teacher is False
    assert params.resolve(base | {"student_layers": "0,1"}, "04_distillation").student_layers == [0, 1]  # -p 0,1
    assert params.resolve(base | {"student_layers": 1}, "04_distillation").student_layers == [1]
    with pytest.raises(ValueError, match="unlabelled_langs needs teacher=True and hardness=1"):
        distillation.kd_config(params.resolve(base | {"unlabelled_langs": "es", "hardness": 0.5}, "04_distillation"))
    with pytest.raises(ValueError, match="choose from es, nl"):
        params.resolve(base | {"unlabelled_langs": "en"}, "04_distillation")
    with pytest.raises(ValueError, match="student_model 'distilbert' is not among the profile's models"):
        params.resolve(base | {"student_model": "distilbert"}, "04_distillation")


def test_unlabelled_sentences_follow_english_with_their_tags_dropped(work_dirs):
    P = params.resolve({"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()},
                        "unlabelled_langs": "es,nl", "max_train_samples": 20}, "04_distillation")
    english = distillation.common.english_train(P)
    data = distillation.training_sentences(P)
    assert len(data) == len(english) + 40
    assert data[: len(english)]["tokens"] == english["tokens"]  # English first, labels kept
    assert all(set(tags) == {0} for tags in data[len(english):]["ner_tags"])  # es, nl: O only (never read)
    assert distillation.run_name(P, [1]) == "tiny-L1-kd-unlab_es_nl-s42"
    whole = params.resolve({"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()}, "student_model": "tiny"},
                           "04_distillation")
    assert distillation.run_name(whole, [0, 1]) == "tiny-kd-s42"


@pytest.mark.notebook
def test_notebook_distils_on_smoke_and_writes_a_record(work_dirs, tmp_path):
    dirs = {k: str(v) for k, v in work_dirs.items()}
    staged = runner.run_notebooks("smoke", ["04_distillation"], dirs | {"generic_langs": "en,es"}, out_dir=tmp_path)
    runner.run_notebooks("smoke", ["04_distillation"], dirs | {"teacher": False}, out_dir=tmp_path / "ce")
    written = read_records(work_dirs["results_dir"], "04_distillation")
    check_smoke_records(written, "04_distillation")
    records = {r["run"]: r for r in written}
    assert {"tiny-L1-generic_en_es-kd-s42", "tiny-L1-ce-s42"} <= set(records)
    kd = records["tiny-L1-generic_en_es-kd-s42"]
    assert kd["technique"]["layers"] == [1] and kd["technique"]["teacher"] is True
    assert kd["training"]["teacher_key"] and kd["training"]["checkpoint"]
    assert {"dense", "student"} <= {t["model"] for t in kd["throughput"]}
    assert records["tiny-L1-ce-s42"]["training"]["teacher_key"] is None
    assert kd["data_setting"] == "generic-multilingual" and records["tiny-L1-ce-s42"]["task_agnostic"] is None
    printed = "".join(text for cell in json.loads(staged[0].read_text())["cells"] for out in cell.get("outputs", [])
                      for text in out.get("text", []))
    assert "task-agnostic stage on en,es" in printed and "no run with a task-agnostic stage yet" not in printed


def test_a_whole_profile_model_as_student_with_unlabelled_spanish(work_dirs):
    P = params.resolve({"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()}, "student_model": "tiny",
                        "unlabelled_langs": "es"}, "04_distillation")
    common.setup(P)
    record = distillation.run(P)
    assert record["run"] == "tiny-kd-unlab_es-s42"
    assert record["technique"]["layers"] == [0, 1] and record["technique"]["unlabelled_langs"] == ["es"]
    assert record["data_setting"] == "target-unlabelled"  # it saw Spanish sentences: not zero-shot in Spanish
    english = len(common.english_train(P))
    assert record["training"]["teacher_logits"]["forward_calls"] > 0  # a teacher cache of its own (more sentences)
    assert record["training"]["steps"] > 0 and english < len(distillation.training_sentences(P))


def test_records_made_before_the_distil_kind_existed_stay_current():
    from mmakit.study import code_version

    older = {k: v for k, v in code_version.versions_for("01_baselines").items() if k != "distil"}
    job = runner.Job("01_baselines", "x", {})
    assert runner.is_current({"code_versions": older, "profile": "smoke", "params": {}}, job, "smoke")
    changed = older | {"fine-tune": older["fine-tune"] + 1}
    assert not runner.is_current({"code_versions": changed, "profile": "smoke", "params": {}}, job, "smoke")
    assert not runner.is_current({"code_versions": {}, "profile": "smoke", "params": {}}, job, "smoke")


def test_intermediate_matching_adds_a_hidden_state_loss_from_the_layers_the_student_came_from(smoke):
    raw = common.english_train(smoke).select(range(64))
    teacher, tok = _bert(raw["tokens"], layers=4)
    teacher.eval()
    data = tokenize_dataset(raw, tok)
    words = WordTeacher(teacher, data, tok.pad_token_id)
    batch = next(iterate(data, [list(range(8))], tok.pad_token_id))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    bottom = drop_layers(teacher, [0, 1]).eval()  # its layers see what the teacher's first two see
    same = WordKDHook(words, data, KDConfig(intermediate_weight=1.0), layer_map={0: 0, 1: 1})
    with torch.no_grad():
        assert float(same.hidden_loss(bottom(**inputs, output_hidden_states=True).hidden_states, inputs)) < 1e-10
    student = drop_layers(teacher, [1, 3])
    plain = WordKDHook(words, data, KDConfig())
    matched = WordKDHook(words, data, KDConfig(intermediate_weight=1.0), layer_map={0: 1, 1: 3})
    with torch.no_grad():
        student.eval()
        assert float(matched.hidden_loss(student(**inputs, output_hidden_states=True).hidden_states, inputs)) > 0
        assert float(matched.compute_loss(student, batch)) > float(plain.compute_loss(student, batch))
    with pytest.raises(ValueError, match="layer map"):
        WordKDHook(words, data, KDConfig(intermediate_weight=1.0))
    log = fine_tune(student, data, TrainConfig(epochs=2, lr=2e-3, batch_size=16), tok.pad_token_id, hooks=[matched])
    assert all(torch.isfinite(torch.tensor(log.losses)))


def test_a_task_agnostic_stage_comes_before_fine_tuning_and_is_kept_in_the_record(work_dirs):
    P = params.resolve({"profile": "smoke", **{k: str(v) for k, v in work_dirs.items()}, "generic_langs": "en,es,nl",
                        "max_train_samples": 40}, "04_distillation")
    common.setup(P)
    record = distillation.run(P)
    stage = record["task_agnostic"]
    assert record["run"] == "tiny-L1-generic_en_es_nl-kd-s42" and record["data_setting"] == "generic-multilingual"
    assert stage["langs"] == ["en", "es", "nl"] and stage["steps"] == P.generic_steps
    assert stage["sentences"] == sum(stage["per_language"].values()) == 3 * (40 - P.generic_held_out)
    assert [p["step"] for p in stage["curve"]] == [0, 3, 6] and stage["curve"][0]["train"] is None
    assert all(p["held_out"] == pytest.approx(p["held_out_hidden"] + p["held_out_attention"]) for p in stage["curve"])
    assert "task_agnostic" not in record["training"]
    plain = distillation.distil(params.Params(P | {"generic_langs": []}))[2]
    assert plain["key"] != record["cache_key"] and plain["task_agnostic"] is None  # another student
    assert distillation.distil(P)[2]["task_agnostic"]["wall_s"] == stage["wall_s"]  # both stages from the cache
