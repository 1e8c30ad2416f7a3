import pytest
import sentencepiece as spm
from transformers import XLMRobertaTokenizer

from mmakit.core.alignment import IGNORE, first_subtokens, tokenize_dataset
from mmakit.core.data import LABEL2ID, to_dataset
from mmakit.core.models import train_wordpiece

SENTENCES = [(["Anna", "Bergström", "visited", "Utrecht", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"])] * 3


@pytest.fixture(scope="module")
def sentencepiece_tokenizer(tmp_path_factory):
    """An XLM-R style (SentencePiece unigram) fast tokenizer trained on a few lines, offline."""
    d = tmp_path_factory.mktemp("sp")
    (d / "t.txt").write_text("\n".join(f"Anna visited Utrecht {i} hola mundo hallo wereld ." for i in range(300)))
    spm.SentencePieceTrainer.train(input=str(d / "t.txt"), model_prefix=str(d / "m"), vocab_size=60,
                                   model_type="unigram", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(d / "m.model"))
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())] + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab)


def test_first_subtokens_marks_word_starts_only():
    assert first_subtokens([None, 0, 0, 1, 2, 2, 2, None]) == [IGNORE, 0, IGNORE, 1, 2, IGNORE, IGNORE, IGNORE]


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_labels_sit_on_first_subtoken_of_each_word(kind, sentencepiece_tokenizer):
    tok = sentencepiece_tokenizer if kind == "sentencepiece" else train_wordpiece([["Anna", "visited", "."]], 60)
    out = tokenize_dataset(to_dataset(SENTENCES), tok)
    row = out[0]
    word_ids = tok(SENTENCES[0][0], is_split_into_words=True).word_ids()
    assert len(row["labels"]) == len(word_ids)
    starts = [i for i, w in enumerate(row["word_index"]) if w != IGNORE]
    assert [row["word_index"][i] for i in starts] == [0, 1, 2, 3, 4]
    assert [row["labels"][i] for i in starts] == [LABEL2ID[t] for t in SENTENCES[0][1]]
    assert sum(label != IGNORE for label in row["labels"]) == 5
    assert len(row["input_ids"]) > 5  # words were split into several sub-tokens


def test_truncation_keeps_max_length():
    tok = train_wordpiece([["a", "b"]], 40)
    long = to_dataset([(["a"] * 300, ["O"] * 300)])
    assert len(tokenize_dataset(long, tok, max_length=128)[0]["input_ids"]) == 128
