"""The dense fine-tuned teacher's word-level logits over English train, computed once per
teacher and cached on disk, for every driver that distils from it (04's students, 03's pruning
runs): the teacher's forward pass never runs during their training."""
from __future__ import annotations

import time

from accelerate import PartialState
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.data import fingerprint
from mmakit.core.hardware import resolve_device
from mmakit.core.paths import cache_root
from mmakit.study.code_version import code_version
from mmakit.study.params import Params
from mmakit.techniques.distillation import WordTeacher


def teacher_logits(P: Params, sentences: Dataset, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                   teacher_key: str, batch_size: int = 32) -> tuple[WordTeacher, dict]:
    """The teacher's word-level logits over the training `sentences` (English train, perhaps
    more), from the cache or computed once (one pass, on the run's device) and cached:
    (WordTeacher, {"path", "computed", "seconds", "forward_calls"})."""
    data = tokenize_dataset(sentences, tokenizer, P.max_length)
    words = WordTeacher(teacher, data, tokenizer.pad_token_id, batch_size)
    name = f"{teacher_key}-{fingerprint(data)}-{P.max_length}-{code_version('distil')}.pt"
    path = cache_root(P.get("cache_dir")) / "teacher_logits" / name
    t0 = time.perf_counter()
    computed = not path.exists()
    if computed:
        teacher.to(resolve_device(P.get("device") or "auto"))
        words.precompute()
        teacher.to("cpu")
        if PartialState().is_main_process:
            words.save(path)
        PartialState().wait_for_everyone()
    else:
        words.load(path)
    return words, {"path": str(path), "computed": computed, "seconds": round(time.perf_counter() - t0, 2),
                   "forward_calls": words.forward_calls}
