import numpy as np
import pytest

from mmakit.core.data import LABEL2ID, LABELS, to_dataset
from mmakit.core.evaluation import EvalSuite, mls, score
from mmakit.core.models import train_wordpiece


def test_strict_f1_on_hand_made_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    s = score(gold, pred)
    # 3 gold entities, 3 predicted, 2 correct
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert s["per_type"]["PER"] == 1.0 and s["per_type"]["LOC"] == 0.0


def test_strict_mode_rejects_partial_spans():
    assert score([["B-PER", "I-PER"]], [["B-PER", "O"]])["f1"] == 0.0
    # a predicted entity opened by I- is invalid under strict IOB2
    assert score([["B-PER"]], [["I-PER"]])["f1"] == 0.0


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
