"""Shared test setup: one torch thread, project fixtures as the default data, results and
caches in temporary folders, and a session-wide fine-tuned tiny model."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures" / "data"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def work_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Cache and results folders for the whole session, kept out of the repository."""
    base = tmp_path_factory.mktemp("mmakit")
    dirs = {"cache_dir": base / "cache", "results_dir": base / "results"}
    os.environ["MMAKIT_CACHE_DIR"] = str(dirs["cache_dir"])
    os.environ["MMAKIT_RESULTS_DIR"] = str(dirs["results_dir"])
    return dirs


@pytest.fixture(scope="session")
def smoke(work_dirs: dict[str, Path]):
    """Resolved smoke-profile parameters on the project's fixtures, whatever MMAKIT_DATA_DIR says,
    so what a unit test measures does not depend on the machine (the notebook tests take the
    data the environment gives)."""
    from mmakit.study import params

    return params.resolve({"profile": "smoke", "data_dir": str(FIXTURES), **{k: str(v) for k, v in work_dirs.items()}},
                          "tests")


@pytest.fixture(scope="session")
def tiny_finetuned(smoke):
    """(model, tokenizer, cache metadata) of the smoke profile's fine-tuned tiny BERT."""
    from mmakit.study import common

    return common.fine_tuned(smoke)


@pytest.fixture(scope="session")
def export_records(smoke):
    """05_quantization records `export-fp32` and `export-dynamic` of the smoke baseline (timed in
    onnxruntime only), the records the export and tagging tests rebuild graphs from."""
    from mmakit.study import params, quantization

    given = {"profile": "smoke", "cache_dir": smoke["cache_dir"], "results_dir": smoke["results_dir"],
             "quant_methods": ["dynamic"], "runtimes": ["onnxruntime"], "batches": [1], "bench_seconds": 0.1,
             "bench_rounds": 1, "run_name": "export"}
    return {r["run"]: r for r in quantization.run(params.resolve(given, "05_quantization"))}


@pytest.fixture(scope="session")
def exported(export_records, tmp_path_factory):
    """(folder, card) of `python -m mmakit export 05_quantization/export-dynamic`."""
    from mmakit.study.export_model import export

    return export("05_quantization/export-dynamic", tmp_path_factory.mktemp("exported") / "dynamic")
