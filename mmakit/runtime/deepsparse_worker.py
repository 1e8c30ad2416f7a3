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
For tagging and for timing real text, engines are also compiled on demand, one per input shape
(rows x width) met, from the same copy (the first request may then send no batches):
  in:  {"logits": {"input_ids": [[...], ...], ...}}     out: {"ok": true, "logits": [[[...]]]}
  in:  {"load": "en/32", "batches": [{input: rows}, ...]}  out: {"ok": true, "compile_seconds": {...}}
       (each shape is compiled and run once)
  in:  {"pass": "en/32", "seconds": 0.0, "warmup": 0, "min_calls": 1}   out: {"ok": true, "times": [...]}
       (seconds per pass over every batch loaded under that name)
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


def compile_engine(folder: str, n_inputs: int, batch: int, width: int, threads):
    """An engine for inputs of shape (batch, width), compiled from its own copy of the prepared
    graph in `folder` (compile_model rewrites the file it is given)."""
    import deepsparse

    copy_dir = tempfile.mkdtemp(dir=folder)
    for name in os.listdir(folder):
        if name.startswith("model.onnx"):
            shutil.copy(os.path.join(folder, name), copy_dir)
    return deepsparse.compile_model(os.path.join(copy_dir, "model.onnx"), batch_size=batch, num_cores=threads,
                                    input_shapes=[[batch, width]] * n_inputs)


def compile_engines(setup: dict, folder: str) -> tuple[dict, dict, dict]:
    """One engine per batch size (deepsparse engines have a fixed shape), each from its own copy."""
    import numpy as np

    source = prepare_copy(setup["model"], folder)
    names = graph_inputs(source)
    rows = {n: np.asarray(setup["inputs"][n], dtype=np.int64) for n in names if n in setup["inputs"]}
    width = setup["seq_len"]
    engines, feeds, seconds = {}, {}, {}
    for batch in setup["batches"]:
        start = time.perf_counter()
        engines[batch] = compile_engine(folder, len(names), batch, width, setup.get("threads"))
        seconds[str(batch)] = round(time.perf_counter() - start, 2)
        feeds[batch] = [_take(rows.get(n), batch, width) for n in names]
    return engines, feeds, seconds


class ShapedEngines:
    """Engines compiled on demand, one per input shape, for inputs sent with the request."""

    def __init__(self, folder: str, threads):
        self.folder, self.threads = folder, threads
        self.names = graph_inputs(os.path.join(folder, "model.onnx"))
        self.engines: dict = {}
        self.passes: dict = {}

    def feed(self, inputs: dict) -> list:
        """The graph's inputs in its order from a request's rows (zeros for one not sent)."""
        import numpy as np

        arrays = {n: np.asarray(v, dtype=np.int64) for n, v in inputs.items()}
        shape = next(iter(arrays.values())).shape
        return [np.ascontiguousarray(arrays[n]) if n in arrays else np.zeros(shape, dtype=np.int64) for n in self.names]

    def engine(self, feed: list):
        """The engine for the feed's shape, compiled the first time that shape is met."""
        shape = tuple(feed[0].shape)
        if shape not in self.engines:
            self.engines[shape] = compile_engine(self.folder, len(self.names), shape[0], shape[1], self.threads)
        return self.engines[shape]

    def logits(self, request: dict) -> dict:
        feed = self.feed(request["logits"])
        return {"ok": True, "logits": self.engine(feed).run(feed)[0].tolist()}

    def load(self, request: dict) -> dict:
        """Keep the batches of a pass under its name; compile and run each new shape once."""
        work, seconds = [], {}
        for inputs in request["batches"]:
            feed = self.feed(inputs)
            shape = tuple(feed[0].shape)
            if shape not in self.engines:
                start = time.perf_counter()
                self.engine(feed).run(feed)
                seconds["x".join(map(str, shape))] = round(time.perf_counter() - start, 2)
            work.append((self.engine(feed), feed))
        self.passes[request["load"]] = work
        return {"ok": True, "compile_seconds": seconds}

    def time_pass(self, request: dict) -> dict:
        work = self.passes[request["pass"]]

        def run_pass() -> None:
            for engine, feed in work:
                engine.run(feed)

        return {"ok": True, "times": timed_calls(run_pass, float(request.get("seconds", 0.0)),
                                                 int(request.get("warmup", 0)), int(request.get("min_calls", 1)))}


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
    folder = setup.get("folder") or tempfile.mkdtemp(prefix="mmakit-ds-")
    try:
        import deepsparse

        engines, feeds, seconds = compile_engines(setup, folder)
        shaped = ShapedEngines(folder, setup.get("threads"))
    except Exception as exc:  # a graph deepsparse cannot compile: say why and stop
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})
        return
    reply({"ok": True, "deepsparse": deepsparse.__version__, "compile_seconds": seconds})
    on_demand = {"logits": shaped.logits, "load": shaped.load, "pass": shaped.time_pass}
    for line in sys.stdin:
        request = json.loads(line)
        kind = next((k for k in on_demand if k in request), None)
        if kind is not None:
            try:
                reply(on_demand[kind](request))
            except Exception as exc:  # e.g. a shape deepsparse cannot compile: the caller decides
                reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]})
            continue
        batch = request["batch"]
        if batch not in engines:
            reply({"ok": False, "error": f"no engine compiled for batch {batch}"})
            continue
        engine, feed = engines[batch], feeds[batch]
        times = timed_calls(lambda: engine.run(feed), float(request["seconds"]), int(request.get("warmup", 1)))
        reply({"ok": True, "times": times})


if __name__ == "__main__":
    main()
