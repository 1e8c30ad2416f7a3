"""Times one ONNX graph in deepsparse; runs inside the deepsparse virtual environment.

deepsparse needs numpy < 2, onnx < 1.15 and Python < 3.12, so it cannot be imported by the
main environment: mmakit starts this file with the deepsparse venv's python and talks to it
in JSON lines. Of mmakit it imports only `mmakit.timing` (standard library), so it runs
there as a plain script next to numpy, onnx and deepsparse.

Protocol (one JSON object per line):
  in, first:  {"model": path, "batches": [1, 4], "seq_len": 128, "threads": 2, "folder": scratch,
               "inputs": {"input_ids": [[...], ...], "attention_mask": [[...], ...]}}
  out:        {"ok": true, "deepsparse": "1.8.0", "compile_seconds": {"1": 3.2, ...}}
  in, repeated: {"batch": 4, "seconds": 2.0, "warmup": 2}
  out:        {"ok": true, "times": [0.051, 0.050, ...]}   (seconds per call)
An error is answered with {"ok": false, "error": "..."}; end of input ends the worker.
The copies of the graph go to the scratch folder, which the caller removes even after a crash.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import traceback

os.environ["NM_DISABLE_ANALYTICS"] = "1"  # before deepsparse is imported: no analytics calls home


def _load_timing():
    """mmakit/timing.py loaded by file path: putting mmakit's parent folder on sys.path could
    shadow this environment's numpy with the main environment's when mmakit is installed."""
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("mmakit_timing", os.path.join(here, "timing.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timed_calls = _load_timing().timed_calls


def strip_unused_domains(model) -> None:
    """Drop opset imports no node uses (onnxruntime's pre-processing adds ai.onnx.ml, which
    the onnxruntime bundled with deepsparse rejects)."""
    used = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def prepare_copy(path: str, folder: str) -> str:
    """A cleaned copy of the graph (compile_model rewrites the file it is given)."""
    import onnx

    model = onnx.load(path, load_external_data=True)
    strip_unused_domains(model)
    out = os.path.join(folder, "model.onnx")
    large = model.ByteSize() > 1_900_000_000
    onnx.save(model, out, save_as_external_data=large, location="model.onnx.data" if large else None)
    return out


def graph_inputs(path: str) -> list[str]:
    import onnx

    model = onnx.load(path, load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def compile_engines(setup: dict, folder: str) -> tuple[dict, dict, dict]:
    """One engine per batch size (deepsparse engines have a fixed shape), each from its own copy."""
    import deepsparse
    import numpy as np

    source = prepare_copy(setup["model"], folder)
    names = graph_inputs(source)
    rows = {n: np.asarray(setup["inputs"][n], dtype=np.int64) for n in names if n in setup["inputs"]}
    width = setup["seq_len"]
    engines, feeds, seconds = {}, {}, {}
    for batch in setup["batches"]:
        copy_dir = tempfile.mkdtemp(dir=folder)
        for name in os.listdir(folder):
            if name.startswith("model.onnx"):
                shutil.copy(os.path.join(folder, name), copy_dir)
        start = time.perf_counter()
        engines[batch] = deepsparse.compile_model(
            os.path.join(copy_dir, "model.onnx"), batch_size=batch, num_cores=setup.get("threads"),
            input_shapes=[[batch, width]] * len(names),
        )
        seconds[str(batch)] = round(time.perf_counter() - start, 2)
        feeds[batch] = [_take(rows.get(n), batch, width) for n in names]
    return engines, feeds, seconds


def _take(rows, batch: int, width: int):
    """`batch` rows cycled from the given ones (zeros for an input that was not sent)."""
    import numpy as np

    if rows is None:
        return np.zeros((batch, width), dtype=np.int64)
    index = [i % len(rows) for i in range(batch)]
    return np.ascontiguousarray(rows[index, :width])


def main() -> None:
    # Keep the protocol on its own descriptor and send everything libraries print to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    setup = json.loads(sys.stdin.readline())
    try:
        import deepsparse

        engines, feeds, seconds = compile_engines(setup, setup.get("folder") or tempfile.mkdtemp(prefix="mmakit-ds-"))
    except Exception as exc:  # a graph deepsparse cannot compile: say why and stop
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        return
    reply({"ok": True, "deepsparse": deepsparse.__version__, "compile_seconds": seconds})
    for line in sys.stdin:
        request = json.loads(line)
        batch = request["batch"]
        if batch not in engines:
            reply({"ok": False, "error": f"no engine compiled for batch {batch}"})
            continue
        engine, feed = engines[batch], feeds[batch]
        times = timed_calls(lambda: engine.run(feed), float(request["seconds"]), int(request.get("warmup", 1)))
        reply({"ok": True, "times": times})


if __name__ == "__main__":
    main()
