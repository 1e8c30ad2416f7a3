"""Which text a run learnt from beyond English CoNLL-2003: the condition under which its es/nl
scores count as zero-shot. Every record carries it (`data_setting`), decided here from the
run's parameters alone, so records made before the field existed get the same answer.
"""
from __future__ import annotations

from collections.abc import Mapping

# labelled English CoNLL-2003, perhaps also English generic text: zero-shot in es and nl
ENGLISH_ONLY = "english-only"
# also generic text (no NER data, nothing from CoNLL) in other languages, as 04's task-agnostic stage
# reads: zero-shot in the paper's sense, shown as its own setting
GENERIC_MULTILINGUAL = "generic-multilingual"
TARGET_UNLABELLED = "target-unlabelled"  # also unlabelled es/nl CoNLL-2002 sentences: not zero-shot in the strict sense
DATA_SETTINGS = (ENGLISH_ONLY, GENERIC_MULTILINGUAL, TARGET_UNLABELLED)


def target_unlabelled_langs(notebook: str, params: Mapping) -> list[str]:
    """The languages whose unlabelled CoNLL-2002 sentences the run, or a model it starts from,
    was taught on: 04's `unlabelled_langs`, 06's `combine_unlabelled_langs` (which teach its
    student, so only with `combine_student`)."""
    if notebook == "04_distillation":
        return list(params.get("unlabelled_langs") or [])
    if notebook == "06_combined" and params.get("combine_student"):
        return list(params.get("combine_unlabelled_langs") or [])
    return []


def generic_text_langs(notebook: str, params: Mapping) -> list[str]:
    """The languages of the generic text the run's student learnt from in 04's task-agnostic
    stage: 04's `generic_langs`, 06's `combine_generic_langs` (only with `combine_student`)."""
    if notebook == "04_distillation":
        return list(params.get("generic_langs") or [])
    if notebook == "06_combined" and params.get("combine_student"):
        return list(params.get("combine_generic_langs") or [])
    return []


def data_setting(notebook: str, params: Mapping) -> str:
    """The data setting of a run of `notebook` with `params` (one of DATA_SETTINGS): target
    unlabelled when it saw es/nl CoNLL-2002 sentences, else generic-multilingual when it saw
    generic text in any language but English, else english-only."""
    if target_unlabelled_langs(notebook, params):
        return TARGET_UNLABELLED
    if any(lang != "en" for lang in generic_text_langs(notebook, params)):
        return GENERIC_MULTILINGUAL
    return ENGLISH_ONLY


def record_data_setting(record: Mapping) -> str:
    """A record's data setting: its `data_setting` field, else (a record made before the field
    existed) derived from its notebook and parameters."""
    return record.get("data_setting") or data_setting(record["notebook"], record.get("params") or {})
