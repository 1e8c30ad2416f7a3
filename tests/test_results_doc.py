"""No number typed by hand: README's headline block is what the committed records give, and
RESULTS.md is rendered from records with every section, interval and paper reference column."""
from mmakit.core.paths import REPO
from mmakit.report import results
from mmakit.study.records import read_records
from tests.report_records import baselines, pipeline, pruned, quantized

COMMITTED = REPO / "outputs" / "results"


def test_readmes_headline_block_is_what_the_committed_records_give(monkeypatch):
    monkeypatch.setenv("MMAKIT_RESULTS_DIR", str(COMMITTED))  # their predictions files, whatever other tests set
    records = [r for r in read_records(COMMITTED) if r["profile"] == "quick"]
    shown = results.readme_block_in((REPO / "README.md").read_text())
    assert shown is not None, "README.md lost its headline markers"
    assert shown == results.readme_block(records), "README's headline is stale: run `python -m mmakit report --readme`"


def test_the_readme_block_is_rewritten_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.HEADLINE_START}\nold\n{results.HEADLINE_END}\nrest\n")
    block = f"{results.HEADLINE_START}\nnew\n{results.HEADLINE_END}"
    assert results.update_readme(readme, block) and not results.update_readme(readme, block)
    assert readme.read_text() == f"intro\n{block}\nrest\n"


def test_results_markdown_holds_every_table_with_intervals_and_paper_columns():
    records = (baselines({42: -0.124, 43: -0.121, 44: -0.125}) + pruned("obs", 0.9, {42: -0.433, 43: -0.392})
               + pruned("magnitude", 0.9, {42: -0.53, 43: -0.55})
               + [r for seed in (42, 43, 44) for r in quantized("qat", seed, 0.004)]
               + [pipeline("obs90-q", -0.451, "obs-90-cubic-s42")])
    text = results.results_markdown(records, "quick")
    for heading in ("The paper's findings", "Baseline (Tables 1 and 2)", "Unstructured pruning (Table 3)",
                    "Distillation (Tables 4 and 5)", "Quantization (Tables 6 and 7)", "Combined pipelines (Tables 8-10)",
                    "The fastest model per setting", "# CPU class avx512-bf16: avx512-bf16 test CPU, 2 cores"):
        assert heading in text
    assert "| xlm 90 q |" in text and "paper mls" in text and "xlm magnitude 90" in text
    assert "-0.123 [-0.129, -0.118]" in text  # the baseline's seed mean with its t interval
    assert "no predictions stored: not judged" in text  # the one-seed pipeline against its baseline


def test_each_setting_beyond_the_papers_gets_its_own_section_saying_whether_it_is_zero_shot():
    """A generic-multilingual pipeline is zero-shot (no es/nl NER data, no CoNLL-2002 text) and must
    not sit under a target-unlabelled heading that calls it not zero-shot, nor beside the paper's rows."""
    generic = pipeline("generic-obs80-qkd", -0.49, "student-generic", student=6, setting="generic-multilingual")
    unlabelled = pipeline("unlab-obs80-q", -0.33, "student-unlab", student=6, setting="target-unlabelled")
    text = results.results_markdown(baselines({42: -0.12}) + [generic, unlabelled], "quick")
    sections = {part.split("\n", 1)[0]: part for part in text.split("\n## ")}
    ours = next(body for title, body in sections.items() if title.startswith("Combined pipelines (Tables"))
    zero_shot = next(body for title, body in sections.items()
                     if title.startswith("Combined pipelines beyond the paper (generic-multilingual: zero-shot"))
    not_zero_shot = next(body for title, body in sections.items()
                         if title.startswith("Combined pipelines beyond the paper (target-unlabelled")
                         and "not zero-shot" in title)
    assert "-0.490" in zero_shot and "-0.490" not in not_zero_shot and "-0.490" not in ours
    assert "-0.330" in not_zero_shot and "-0.330" not in zero_shot


def test_results_markdown_shows_the_newest_real_text_benchmark_of_each_cpu_class():
    from tests.report_records import run

    def bench(name: str, started: str, dense: float, sparse: float) -> dict:
        rows = [{"model": m, "runtime": "onnxruntime", "lang": "all", "batch": 32, "sentences_per_s": v,
                 "words_per_s": 14 * v, "speedup": round(v / dense, 2), "status": "ok"}
                for m, v in (("dense", dense), ("06_combined/x-q", sparse))]
        models = {"06_combined/x-q": {"data_setting": "generic-multilingual", "mls": {"test": -0.5},
                                      "fixed_length": [{"runtime": "onnxruntime", "batch": 8, "speedup": 2.3,
                                                        "status": "ok"}]}}
        return run("bench", name, {"method": "bench-text"}, 0.0) | {
            "started": started, "text_throughput": rows, "models": models}

    records = baselines({42: -0.12})
    assert "## Real text" not in results.results_markdown(records, "quick")
    older, newer = bench("text-old", "2026-12-01T00:00:00", 200.0, 400.0), bench("text-new", "2026-12-07T00:00:00", 229.0, 583.0)
    text = results.results_markdown(records, "quick", text_benches=[newer, older])
    section = text[text.index("## Real text"):]
    assert "`text-new`" in section and "| 583.0 |" in section and "| 2.55 |" in section and "| 2.3 |" in section
    assert "text-old" not in section


def test_each_task_agnostic_stage_choice_is_set_against_the_student_without_it():
    """The hidden-state loss and the generic-text ablations are differences with an interval
    against the same student taught on all five languages with output KD only."""
    from tests.report_records import seeded

    def students(name: str, langs: list[str], mls_by_seed: dict[int, float], intermediate: float | None = None,
                 steps: int = 4000) -> list[dict]:
        technique = {"method": "distil", "layers": [1, 3, 5, 7, 9, 11], "num_layers": 6, "teacher": True,
                     "hardness": 1.0, "temperature": 2.0, "generic_langs": langs, "intermediate": intermediate}
        return seeded("04_distillation", name, technique, mls_by_seed, setting="generic-multilingual",
                      task_agnostic={"steps": steps, "passes": round(steps / 7650, 2)})

    five = ["en", "es", "nl", "de", "fr"]
    records = (baselines({42: -0.12}) + students("kd", five, {42: -0.39, 43: -0.41, 44: -0.39})
               + students("kd-hid", five, {42: -0.35, 43: -0.35, 44: -0.38}, 1.0) + students("en-kd", ["en"], {42: -0.44})
               + students("kd-long", five, {42: -0.36}, steps=8000) + students("en-kd-hid-long", ["en"], {42: -0.3}, 1.0, 8000))
    text = results.results_markdown(records, "quick")
    section = text[text.index("## Distillation beyond the paper: the task-agnostic stage's choices"):].split("\n## ")[0]
    hidden = next(line for line in section.splitlines() if line.startswith("| L6: + hidden MSE x1.0 |"))
    assert "+0.037 [" in hidden and "3 seeds, paired" in hidden
    ablation = next(line for line in section.splitlines() if line.startswith("| L6: generic en only |"))
    assert "after generic en,es,nl,de,fr text (4000 stage steps)" in ablation and "no predictions stored" in ablation
    longer = next(line for line in section.splitlines() if line.startswith("| L6: 8000 stage steps (1.05 passes) |"))
    assert "(4000 stage steps)" in longer
    assert "generic en,es,nl,de,fr only" not in section  # the reference is not set against itself
    assert len([line for line in section.splitlines() if line.startswith("| L6: ")]) == 3  # not en + hidden + longer at once


def test_a_student_with_a_task_agnostic_stage_on_english_text_is_not_set_beside_the_papers_row():
    """English generic text keeps a run english-only, but the paper's distilmBERT row is matched only
    by students made as the paper's table makes them: layers taken, then fine-tuned."""
    from mmakit.report import summary
    from tests.report_records import seeded

    technique = {"method": "distil", "layers": [1, 3, 5, 7, 9, 11], "num_layers": 6, "teacher": True,
                 "hardness": 1.0, "temperature": 2.0, "intermediate": None}
    plain = seeded("04_distillation", "kd", technique | {"generic_langs": []}, {42: -0.50})
    staged = seeded("04_distillation", "en-kd", technique | {"generic_langs": ["en"]}, {42: -0.44})
    assert summary.as_the_paper_runs(plain[-1]) and not summary.as_the_paper_runs(staged[-1])
    text = results.results_markdown(baselines({42: -0.12}) + plain + staged, "quick")
    rows = [line for line in text.splitlines() if line.startswith("| L6 [1,3,5,7,9,11]")]
    assert any("distilbert with teacher" in line for line in rows if "generic" not in line)
    assert not any("distilbert with teacher" in line for line in rows if "after generic en text" in line)
