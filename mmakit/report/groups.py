"""What may be compared with what: the CPU class a record was made on and its data setting.

Speed, and with `auto` precision training too, depends on the CPU's instruction sets, so runs
are grouped by a CPU class read from the record's `env.cpu_flags` and two classes never meet in
one comparison, table or frontier. The class names the vendor too: with the same flags, an
Intel Xeon and an AMD EPYC train one recipe into different bf16 checkpoints and time its sparse
graph differently in deepsparse (OBS 80%, batch 4: 1.93x dense onnxruntime on the Xeon, 1.36x
and 1.52x on the EPYC). A record's data setting (study.data_setting) says which
text it learnt from: only english-only runs are zero-shot as the paper's are.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from mmakit.study.data_setting import ENGLISH_ONLY, record_data_setting
from mmakit.study.records import record_scorer

# the first class whose flags a CPU has (the classes differ in what int8 and bf16 run on)
CPU_CLASSES = (("amx", "amx_bf16"), ("avx512-bf16", "avx512_bf16"), ("avx512", "avx512f"), ("avx2", "avx2"))
CPU_VENDORS = ("AMD", "Intel")
UNKNOWN_CPU = "unknown CPU"


def cpu_class(record: Mapping) -> str:
    """amx / avx512-bf16 / avx512 / avx2 from the record's CPU flags ("unknown CPU" without them),
    with the vendor where the CPU's name gives it: e.g. `avx512-bf16 (AMD)`."""
    env = record.get("env") or {}
    flags = set(env.get("cpu_flags") or ())
    if not flags:
        return UNKNOWN_CPU
    name = next((name for name, flag in CPU_CLASSES if flag in flags), "older than avx2")
    vendor = next((v for v in CPU_VENDORS if v.lower() in str(env.get("cpu") or "").lower()), None)
    return f"{name} ({vendor})" if vendor else name


def cpu_models(records: Iterable[Mapping]) -> str:
    """e.g. `AMD EPYC, 2 cores`: the CPU models and core counts behind some records."""
    env = [r.get("env") or {} for r in records]
    return ", ".join(sorted({f"{e.get('cpu', 'unnamed CPU')}, {e.get('cores', '?')} cores" for e in env}))


def cpu_names(records: Iterable[Mapping]) -> str:
    """e.g. `avx512-bf16: AMD EPYC, 2 cores`: the CPUs behind some records, per class."""
    return "; ".join(f"{cls}: {cpu_models(group)}" for cls, group in sorted(by_cpu(records).items()))


def setting(record: Mapping) -> str:
    """The record's data setting: english-only | generic-multilingual | target-unlabelled."""
    return record_data_setting(record)


def is_zero_shot(record: Mapping) -> bool:
    """Whether the run learnt from labelled English alone, as the paper's runs do."""
    return setting(record) == ENGLISH_ONLY


def by_cpu(records: Iterable[Mapping]) -> dict[str, list]:
    """Records grouped by CPU class."""
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(cpu_class(r), []).append(r)
    return groups


def incomparable(a: Mapping, b: Mapping) -> str | None:
    """Why two records may not be compared (different CPU classes or F1 scorers), else None."""
    if cpu_class(a) != cpu_class(b):
        return f"different CPU classes ({cpu_class(a)}, {cpu_class(b)}): not compared"
    if record_scorer(a) != record_scorer(b):
        return f"different F1 scorers ({record_scorer(a)}, {record_scorer(b)}): not compared"
    return None
