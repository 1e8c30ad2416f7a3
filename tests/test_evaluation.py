import numpy as np
import pytest

from mmakit.core.data import LABEL2ID, LABELS, to_dataset
from mmakit.core.evaluation import EvalSuite, ill_formed_chunks, mls, score
from mmakit.core.models import train_wordpiece


def test_strict_f1_on_hand_made_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = score(gold, pred)
    # 3 gold entities, 3 predicted, 2 correct
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["PER"] == 1.0 and s["per_type"]["LOC"] == 0.0


def test_partial_spans_score_zero_in_both_readings():
    s = score([["B-PER", "I-PER"]], [["B-PER", "O"]])
    assert s["f1"] == s["f1_strict"] == 0.0 and s["ill_formed"] == 0


def test_an_entity_opened_by_i_counts_for_conlleval_not_for_strict_iob2():
    s = score([["B-PER"]], [["I-PER"]])
    assert s["f1"] == 1.0 and s["f1_strict"] == 0.0 and s["ill_formed"] == 1


@pytest.mark.parametrize("tags, n", [
    (["B-PER", "I-PER", "O", "B-LOC"], 0),
    (["I-PER"], 1),  # first in the sentence
    (["O", "I-PER", "I-PER"], 1),  # after O, then continued
    (["B-PER", "I-LOC", "I-LOC"], 1),  # type switch
    (["I-PER", "I-LOC", "B-LOC", "I-LOC"], 2),
    (["B-PER", "B-PER", "I-PER"], 0),
])
def test_ill_formed_chunks_are_those_opened_by_i(tags, n):
    assert ill_formed_chunks([tags, ["O"]]) == n


def test_mls_sums_es_and_nl_differences():
    f1 = {"en": {"dev": 0.9}, "es": {"dev": 0.70, "test": 0.6}, "nl": {"dev": 0.80, "test": 0.7}}
    ref = {"es": {"dev": 0.75, "test": 0.7}, "nl": {"dev": 0.80, "test": 0.8}}
    assert mls(f1, ref) == pytest.approx({"dev": -0.05, "test": -0.2})
    assert mls({"es": {"dev": 0.7}, "nl": {"dev": 0.8}}, ref) == pytest.approx({"dev": -0.05})


def test_predictions_map_back_to_words_and_truncated_words_score_o():
    words = ["Anna", "went", "to", "Utrecht"]
    tok = train_wordpiece([words], 60)
    sets = {("en", "dev"): to_dataset([(words, ["B-PER", "O", "O", "B-LOC"])])}
    suite = EvalSuite(sets, tok, max_length=4)  # [CLS] + 2 sub-tokens + [SEP]: later words are cut

    def perfect(batch):
        labels = np.zeros((*batch["input_ids"].shape, len(LABELS)))
        index = suite.sets[("en", "dev")].tokenized[0]["word_index"]
        gold = [LABEL2ID[t] for t in ["B-PER", "O", "O", "B-LOC"]]
        for pos, w in enumerate(index):
            if w >= 0:
                labels[0, pos, gold[w]] = 1
        return labels

    pred = suite.sets[("en", "dev")].predict(perfect, tok.pad_token_id)
    assert pred[0][0] == "B-PER" and pred[0][3] == "O"  # Utrecht was truncated away
    assert suite.evaluate(perfect)["f1"]["en"]["dev"] == pytest.approx(2 / 3)  # P=1, R=1/2


def _suite(sentences, max_length, extra_words=()):
    """An EvalSuite over sentences that open with a person, one WordPiece token per word except `extra_words`."""
    tok = train_wordpiece([[w for w in s if w not in extra_words] for s in sentences], 2000)
    tagged = [(s, ["B-PER"] + ["O"] * (len(s) - 1)) for s in sentences]
    sets = {("en", "dev"): to_dataset(tagged), ("nl", "test"): to_dataset(tagged[:1])}
    return EvalSuite(sets, tok, max_length=max_length)


def _all_o(batch):
    return np.zeros((*batch["input_ids"].shape, len(LABELS)))


def test_evaluate_counts_words_and_sentences_lost_to_truncation(work_dirs):
    words = [f"w{i}" for i in range(40)]
    sentences = [
        words[:20],  # 14 words fit between [CLS] and [SEP] in 16 positions: 6 lost
        words[:30],  # 16 lost
        words[:5],  # short: nothing lost
        words[:14],  # fills all 16 positions exactly: nothing lost
        [*words[:13], "Zzyzx", *words[13:15]],  # Zzyzx starts at position 14 and is cut inside: kept; 2 lost
    ]
    suite = _suite(sentences, 16, extra_words={"Zzyzx"})
    index = suite.sets[("en", "dev")].tokenized["word_index"]
    assert len(index[4]) == 16 and index[4][14] == 13  # Zzyzx's first sub-token made it in
    result = suite.evaluate(_all_o)
    assert set(result) == {"f1", "f1_strict", "ill_formed", "detail", "truncated", "predictions"}
    assert [len(p) for p in result["predictions"][("en", "dev")]] == [len(s) for s in sentences]
    assert result["truncated"] == {
        "en": {"dev": {"words": 6 + 16 + 2, "sentences": 3}},
        "nl": {"test": {"words": 6, "sentences": 1}},
    }
    assert suite.evaluate(_all_o, [("nl", "test")])["truncated"] == {"nl": {"test": {"words": 6, "sentences": 1}}}


def test_evaluate_reports_no_truncation_when_everything_fits(work_dirs):
    sentences = [[f"w{i}" for i in range(20)], ["Anna", "\u200b"]]  # \u200b has no sub-token: dropped, not cut
    suite = _suite(sentences, 128)
    assert suite.sets[("en", "dev")].tokenized["word_index"][1][1:-1] == [0]
    assert suite.evaluate(_all_o)["truncated"] == {
        "en": {"dev": {"words": 0, "sentences": 0}}, "nl": {"test": {"words": 0, "sentences": 0}}}
