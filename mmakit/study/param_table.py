"""Every parameter of the study in one table: its type, valid choices or range, default, the
notebooks whose `parameters` cell takes it, and a one-line doc.

Validation and coercion (`params.coerce`), the notebooks' parameters cells (`parameters_cell`;
a test fails when a committed cell differs) and the parameter reference (`python -m mmakit
params`) all come from this table, so a parameter is added in one place. Valid choices are
owned by the layer that implements them and only collected here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mmakit.core import train
from mmakit.core.data import GENERIC_LANGUAGES, LANGUAGES, SPLITS
from mmakit.core.hardware import DEVICES, PRECISIONS
from mmakit.runtime.bench import RUNTIMES
from mmakit.techniques.distillation import students as distil_students
from mmakit.techniques.heads import strategy as head_strategy
from mmakit.techniques.pruning import config as pruning_config
from mmakit.techniques.pruning import fisher as pruning_fisher
from mmakit.techniques.pruning import masks as pruning_masks
from mmakit.techniques.pruning import schedule as pruning_schedule
from mmakit.techniques.quantization import pipeline as quant_pipeline
from mmakit.techniques.quantization import ptq

KINDS = ("bool", "int", "number", "str", "list[int]", "list[number]", "list[str]", "mapping")
ZERO_SHOT_LANGS = tuple(lang for lang in LANGUAGES if lang != "en")
TRAINING = ("01_baselines", "03_obs", "04_distillation")
BENCHMARKED = ("01_baselines", "04_distillation")
MODELLED = ("01_baselines", "02_heads", "03_obs", "04_distillation", "05_quantization", "06_combined")
ALL = (*MODELLED, "07_report")


@dataclass(frozen=True)
class Param:
    """One parameter. `low`/`high` bound numbers (or each item of a list of numbers), open
    unless `closed` names the closed ends ("low", "high"); `choices` bound a str, an int or
    each item of a list; `notebooks` are those whose parameters cell takes it (empty: set in
    a profile only); `overrides`: the parameter a run records this one's value under when it is set
    (so a record's value of that one follows from this one)."""

    name: str
    kind: str
    doc: str
    notebooks: tuple[str, ...] = ()
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    closed: tuple[str, ...] = ()
    default: object = None
    overrides: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}; choose from {', '.join(KINDS)}")

    @property
    def bounds(self) -> str:
        """The range as text, e.g. "(0, inf)" or "[0, 1)"; empty without bounds."""
        if self.low is None and self.high is None:
            return ""
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        return f"{'[' if 'low' in self.closed else '('}{low:g}, {high:g}{']' if 'high' in self.closed else ')'}"

    def in_bounds(self, x: float) -> bool:
        low_ok = self.low is None or (x >= self.low if "low" in self.closed else x > self.low)
        high_ok = self.high is None or (x <= self.high if "high" in self.closed else x < self.high)
        return low_ok and high_ok and math.isfinite(x)


def _positive(name: str, kind: str, doc: str, notebooks: tuple[str, ...] = ()) -> Param:
    return Param(name, kind, doc, notebooks, low=0)


def _fraction(name: str, doc: str, notebooks: tuple[str, ...] = (), high_closed: bool = False) -> Param:
    return Param(name, "number", doc, notebooks, low=0, high=1, closed=("low", "high") if high_closed else ("low",))


TABLE: tuple[Param, ...] = (
    # where things are, and which run this is
    Param("profile", "str", "smoke | quick | paper, or a path to a YAML file", ALL, default="quick"),
    Param("data_dir", "str", "CoNLL folder (conll2003/, conll2002/); default MMAKIT_DATA_DIR", MODELLED),
    Param("fallback_data_dir", "str", "data folder (relative to the repository) when neither data_dir nor MMAKIT_DATA_DIR is set"),
    Param("model_dir", "str", "local folder for the profile's main model", MODELLED),
    Param("results_dir", "str", "where records go (default MMAKIT_RESULTS_DIR or outputs/results)", ALL),
    Param("cache_dir", "str", "checkpoints and graphs (default MMAKIT_CACHE_DIR or ~/.cache/mmakit)", MODELLED),
    Param("experiment", "str", "set by `python -m mmakit run`: the params/experiments file this run comes from", MODELLED),
    Param("run_name", "str", "record name (default: made from the run's settings)",
          ("02_heads", "03_obs", "04_distillation", "05_quantization", "06_combined")),
    Param("run_tag", "str", "a tag in the record's name for runs outside the protocol, e.g. lr1e-4 (not aggregated)",
          ("01_baselines",)),
    Param("variant", "str", "a label added to run and seed-aggregate names when other settings change (e.g. from10)",
          ("03_obs",)),
    # models and the fine-tuning protocol
    Param("models", "mapping", "the profile's models: name -> {source: hub id or folder, tiny: config of a random model}"),
    Param("model", "str", "a model name of the profile (the one a technique starts from)",
          ("02_heads", "03_obs", "04_distillation", "05_quantization", "06_combined")),
    Param("baselines", "list[str]", "model names of the profile to fine-tune", ("01_baselines",)),
    Param("reference", "str", "mls reference: paper (its mlbert row) or a 01_baselines run name",
          ("01_baselines", "03_obs", "04_distillation")),
    _positive("epochs", "number", "epochs of English fine-tuning (the baseline's; students use the same)", TRAINING),
    _positive("lr", "number", "peak learning rate of fine-tuning", TRAINING),
    _positive("batch_size", "int", "sentences per optimizer step", TRAINING),
    Param("seed", "int", "the seed this run trains with (record <name>-s<seed>)", TRAINING, low=0, closed=("low",)),
    Param("seeds", "list[int]", "the protocol's seeds: the record without -s<seed> aggregates those present",
          TRAINING, low=0),
    Param("baseline_seed", "int", "techniques start from (and distil from) the baseline fine-tuned with this seed",
          ("03_obs", "04_distillation"), low=0, closed=("low",)),
    Param("precision", "str", "fp32 | bf16 | fp16 | auto (bf16 where the CPU or GPU computes it natively)",
          ("01_baselines", "04_distillation"), choices=PRECISIONS),
    Param("device", "str", "auto | cpu | cuda", ("01_baselines", "04_distillation"), choices=DEVICES),
    Param("lr_schedule", "str", "learning-rate schedule of fine-tuning", choices=train.SCHEDULES),
    _fraction("warmup_ratio", "fraction of fine-tuning steps with a rising learning rate"),
    Param("weight_decay", "number", "AdamW weight decay", low=0, closed=("low",)),
    Param("freeze_word_embeddings", "bool", "keep the word-embedding matrix fixed while fine-tuning (3x faster steps)",
          TRAINING),
    _positive("max_length", "int", "sub-tokens per sentence; words past it are scored as O"),
    _positive("max_train_samples", "int", "English training sentences used (null: all)", TRAINING),
    _positive("max_eval_samples", "int", "sentences per evaluation set (null: all)",
              ("01_baselines", "03_obs", "04_distillation", "05_quantization", "06_combined")),
    Param("eval_splits", "list[str]", "splits scored", choices=SPLITS),
    _positive("threads", "int", "torch threads", MODELLED),
    Param("speed_probe_steps", "int", "optimizer steps per training-speed probe (0: no probe)", ("01_baselines",),
          low=0, closed=("low",)),
    # speed
    Param("runtimes", "list[str]", "runtimes timed: onnxruntime and/or deepsparse",
          ("01_baselines", "03_obs", "04_distillation", "05_quantization", "06_combined"), choices=RUNTIMES),
    Param("batches", "list[int]", "batch sizes timed, e.g. [1, 4, 8]",
          ("01_baselines", "03_obs", "04_distillation", "06_combined"), low=0),
    _positive("seq_len", "int", "fixed sequence length of the timed inputs (paper: 128)", BENCHMARKED),
    _positive("bench_seconds", "number", "timed seconds per model x runtime x batch", BENCHMARKED),
    _positive("bench_rounds", "int", "interleaved rounds (A B A B) those seconds are split over", BENCHMARKED),
    _positive("bench_threads", "int", "intra-op threads of the timed runtimes (null: all cores)", BENCHMARKED),
    # 02_heads
    Param("strategy", "str", "importance (Michel et al.) | uniform (TextPruner style)", ("02_heads",),
          choices=head_strategy.STRATEGIES),
    _positive("heads_per_iteration", "int", "heads removed per iteration over the whole model", ("02_heads",)),
    _positive("iterations", "int", "head-pruning iterations", ("02_heads",)),
    _fraction("ffn_step", "FFN fraction removed per iteration (null: uniform matches heads, importance none)",
              ("02_heads",)),
    Param("retrain", "number", "epochs of English fine-tuning after each iteration (0: none)", ("02_heads",), low=0,
          closed=("low",)),
    _positive("importance_samples", "int", "English train sentences for head importance", ("02_heads",)),
    _positive("curve_eval_samples", "int", "dev sentences per language at each curve point (null: max_eval_samples)",
              ("02_heads", "03_obs")),
    _positive("bench_every", "int", "time every n-th iteration's graph (plus the first and last)", ("02_heads",)),
    _positive("bench_group", "int", "pruned graphs timed per benchmark run beside the unpruned one", ("02_heads",)),
    # 03_obs
    Param("prune_mode", "str", "gradual (pruning while fine-tuning) | one_shot (no retraining)", ("03_obs",),
          choices=pruning_config.MODES),
    Param("method", "str", "obs | magnitude | movement | random (the control)", ("03_obs",),
          choices=pruning_config.METHODS),
    Param("movement_scores", "str", "movement only: accumulated (-sum g w, SparseML's) | trained (Sanh et al.: "
          "scores learnt through a straight-through TopK mask)", ("03_obs",), choices=pruning_config.SCORES),
    _fraction("sparsity", "final sparsity of the encoder's Linear weights, e.g. 0.8 or 0.9", ("03_obs",)),
    _fraction("initial_sparsity", "sparsity of the first pruning event", ("03_obs",)),
    Param("schedule", "str", "cubic | linear, from initial_sparsity to sparsity", ("03_obs",),
          choices=pruning_schedule.SCHEDULES),
    _positive("pruning_steps", "int", "pruning events (the first at initial_sparsity, the last at sparsity)", ("03_obs",)),
    Param("warmup_steps", "int", "optimizer steps of fine-tuning before the first pruning event", ("03_obs",), low=0,
          closed=("low",)),
    _positive("prune_interval", "int", "optimizer steps between pruning events", ("03_obs",)),
    Param("final_steps", "int", "optimizer steps of fine-tuning with fixed masks", ("03_obs",), low=0, closed=("low",)),
    _positive("prune_lr", "number", "learning rate while pruning (from the fine-tuned model: rewound after every event)",
              ("03_obs",)),
    Param("group_size", "int", "1: unstructured | 4: blocks of 4 consecutive weights", ("03_obs",),
          choices=pruning_config.GROUP_SIZES),
    Param("selection", "str", "global (one ranking over all tensors) | per_tensor (each tensor to the target)",
          ("03_obs",), choices=pruning_masks.SELECTIONS),
    Param("prune_start", "str", "baseline (prune the fine-tuned model) | pretrained (prune while fine-tuning the "
          "pre-trained encoder with the baseline's warm-up and decay, no rewinds, as Sanh et al.)", ("03_obs",),
          choices=pruning_config.STARTS),
    Param("prune_scope", "str", "regex of the nn.Linear modules pruned", ("03_obs",)),
    _positive("num_grads", "int", "OBS: m gradients for the Fisher", ("03_obs",)),
    _positive("grad_batch", "int", "OBS: sentences per gradient", ("03_obs",)),
    _positive("obs_block_size", "int", "OBS: Fisher block size B", ("03_obs",)),
    _positive("obs_damp", "number", "OBS: dampening lambda", ("03_obs",)),
    _positive("obs_chunk_blocks", "int", "OBS: Fisher blocks updated together (memory of temporaries)", ("03_obs",)),
    Param("obs_build", "str", "OBS: sherman-morrison (oBERT's) | direct (batched block inverses)", ("03_obs",),
          choices=pruning_fisher.BUILDS),
    Param("kd", "bool", "distil from the dense fine-tuned model while pruning", ("03_obs",)),
    _positive("temperature", "number", "KD temperature T", ("03_obs", "04_distillation")),
    _fraction("hardness", "KD weight h in (1 - h) CE + h T^2 KL", ("03_obs", "04_distillation"), high_closed=True),
    Param("one_shot_methods", "list[str]", "one_shot mode: methods compared", ("03_obs",),
          choices=pruning_config.METHODS),
    Param("one_shot_sparsities", "list[number]", "one_shot mode: sparsities, each from the dense model", ("03_obs",),
          low=0, high=1),
    Param("one_shot_damps", "list[number]", "one_shot mode: OBS damps swept", ("03_obs",), low=0),
    # 04_distillation
    _positive("student_size", "int", "layers the student keeps", ("04_distillation",)),
    Param("student_choice", "str", "alternate (evenly spread, top kept: DistilBERT's) | bottom | top",
          ("04_distillation",), choices=distil_students.LAYER_CHOICES),
    Param("student_layers", "list[int]", "explicit layer indices instead, e.g. [1, 3, 5, 7, 9, 11]",
          ("04_distillation",), low=0, closed=("low",)),
    Param("teacher", "bool", "word-level KD from the fine-tuned dense baseline (false: cross-entropy only)",
          ("04_distillation",)),
    Param("teacher_model", "str", "the teacher's model name (default: model); another tokenizer works",
          ("04_distillation",)),
    Param("student_model", "str", "a profile model used whole as the student instead of a layer-dropped copy",
          ("04_distillation",)),
    Param("unlabelled_langs", "list[str]", "beyond the paper: also distil on these languages' unlabelled CoNLL-2002 "
          "train sentences", ("04_distillation",), choices=ZERO_SHOT_LANGS),
    Param("intermediate", "bool", "also match hidden states layer by layer (MSE; same tokenizer only)",
          ("04_distillation",)),
    _positive("intermediate_weight", "number", "weight of the hidden-state MSE", ("04_distillation",)),
    # 05_quantization
    Param("quant_methods", "list[str]", "any of dynamic, static, qat, data-free", ("05_quantization",),
          choices=quant_pipeline.METHODS),
    _positive("calibration_size", "int", "English sentences (static) / random sequences (data-free)",
              ("05_quantization",)),
    Param("calibration_method", "str", "minmax | entropy | percentile", ("05_quantization",),
          choices=tuple(ptq.CALIBRATION)),
    Param("quant_format", "str", "qoperator (what deepsparse accelerates) | qdq", ("05_quantization",),
          choices=tuple(ptq.FORMATS)),
    Param("per_channel", "bool", "per-channel weight scales", ("05_quantization",)),
    Param("quant_exclude", "list[str]", "MatMul groups left in float: attention_scores, ffn_output",
          ("05_quantization", "06_combined"), choices=ptq.EXCLUDABLE),
    Param("quantize_embeddings", "bool", "int8 embedding tables", ("05_quantization",)),
    _positive("qat_epochs", "number", "length of the QAT run in epochs", ("05_quantization", "06_combined")),
    _positive("qat_lr", "number", "QAT learning rate", ("05_quantization", "06_combined")),
    _fraction("qat_freeze_ranges", "fraction of QAT steps after which activation ranges stop moving",
              ("05_quantization",), high_closed=True),
    # 06_combined
    _positive("combine_student", "int", "null: the 12-layer baseline; n: 04's n-layer student taught by the baseline",
              ("06_combined",)),
    Param("combine_unlabelled_langs", "list[str]", "beyond the paper: that student also taught on these languages' "
          "unlabelled sentences", ("06_combined",), choices=ZERO_SHOT_LANGS),
    _fraction("combine_sparsity", "null: no pruning; 0.8 | 0.9: OBS with KD from the dense baseline", ("06_combined",)),
    Param("combine_group_size", "int", "1: unstructured | 4: 4-block OBS", ("06_combined",),
          choices=pruning_config.GROUP_SIZES),
    _fraction("combine_initial_sparsity", "first pruning event (null: initial_sparsity)", ("06_combined",)),
    _positive("student_steps", "int", "the student's optimizer steps on the task (null: the baseline's epochs), "
              "e.g. to match another student's training", ("04_distillation", "06_combined")),
    # 04_distillation's task-agnostic stage (and 06's students made with it)
    Param("generic_text_dir", "str", "generic text folder (<lang>.txt); default generic_text/ in the data folder",
          ("04_distillation", "06_combined")),
    Param("generic_langs", "list[str]", "task-agnostic stage before fine-tuning: the student reproduces the "
          "pretrained encoder on these languages' generic text (empty: no stage)", ("04_distillation",),
          choices=GENERIC_LANGUAGES),
    _positive("generic_steps", "int", "optimizer steps of the task-agnostic stage (batch_size sentences each)",
              ("04_distillation",)),
    _positive("generic_lr", "number", "peak learning rate of the task-agnostic stage", ("04_distillation",)),
    _positive("generic_held_out", "int", "generic sentences per language held out to score the stage",
              ("04_distillation",)),
    _positive("generic_eval_every", "int", "stage steps between held-out scores (and checkpoints)",
              ("04_distillation",)),
    # 06_combined: the student's stage, seeds, distillation during QAT
    Param("combine_generic_langs", "list[str]", "the student's task-agnostic stage on these languages' generic "
          "text (04's generic_langs)", ("06_combined",), choices=GENERIC_LANGUAGES),
    Param("combine_intermediate", "bool", "that student also matched the teacher's hidden states while fine-tuning "
          "(04's intermediate: a -kd-hid student)", ("06_combined",)),
    Param("combine_seed", "int", "seed of the student, pruning and QAT (record <name>-s<seed>); null: the "
          "baseline's, no seed in the name", ("06_combined",), low=0, closed=("low",), overrides="seed"),
    Param("qat_distill", "bool", "QAT distils from the dense baseline (word-level KD, as oBERT) instead of English "
          "cross-entropy", ("06_combined",)),
)
# what every notebook's models and scores depend on without each parameters cell naming it
SHARED = ("models", "warmup_ratio", "weight_decay", "lr_schedule", "max_length", "eval_splits", "precision", "device",
          "baseline_seed", "curve_eval_samples")
BY_NAME: dict[str, Param] = {p.name: p for p in TABLE}
assert len(BY_NAME) == len(TABLE), "a parameter is listed twice"
LISTS = tuple(p.name for p in TABLE if p.kind.startswith("list"))


def for_notebook(notebook: str) -> list[Param]:
    """The parameters `notebook`'s parameters cell takes, in table order."""
    return [p for p in TABLE if notebook in p.notebooks]


def parameters_cell(notebook: str) -> str:
    """The source of `notebook`'s parameters cell: every parameter it takes as None (the
    profile fills it), `profile` with its default, each with the table's doc."""
    lines = []
    for p in for_notebook(notebook):
        value = repr(p.default) if p.name == "profile" else "None"
        code = f"{p.name} = {value}".replace("'", '"')
        lines.append(code.ljust(max(28, len(code) + 2)) + f"# {p.doc}")
    return "\n".join(lines)


def reference_markdown() -> str:
    """The table as Markdown, for `python -m mmakit params`."""
    rows = ["| parameter | type | valid | notebooks | what |", "|---|---|---|---|---|"]
    for p in TABLE:
        valid = " \\| ".join(map(str, p.choices)) if p.choices else p.bounds
        where = ", ".join(n[:2] for n in p.notebooks) or "profile"
        rows.append(f"| `{p.name}` | {p.kind} | {valid} | {where} | {p.doc.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)
