"""One-shot OBS pruning with SparseML's OBSPruningModifier; runs inside the sparseml venv.

SparseML 1.8 needs numpy < 2 and transformers < 4.41, so it cannot be imported by the main
environment: mmakit starts this file with the sparseml venv's python. It imports no mmakit
code, only the standard library, torch, transformers and sparseml.

Protocol: one JSON object on stdin,
  {"tensors": path, "output": path, "config": {BertConfig fields}, "recipes": {"0.5": yaml, ...},
   "threads": 1}
where `tensors` is a torch file {"state_dict": {parameter name: tensor}, "batches": [{"input_ids", "attention_mask",
"labels"}, ...]} holding a BertForTokenClassification's weights and the gradient mini-batches,
in the order they are to be used. For each recipe the dense model is pruned once by
`ScheduledModifierManager.apply` (one-shot), its gradient sampler reading those batches with
the model's own loss, and the pruned model's parameters are saved under the recipe's key in
`output`. One JSON line answers on stdout:
  {"ok": true, "sparseml": "1.8.0", "transformers": ..., "torch": ..., "dense_losses": [...],
   "seconds": {"0.5": 1.2, ...}}
(dense_losses: the model's loss on each batch before pruning, so the caller can check that
both environments built the same model), or {"ok": false, "error": "..."}.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback

os.environ["NM_DISABLE_ANALYTICS"] = "1"  # before sparseml / sparsezoo are imported: no analytics calls home


def build_model(config: dict, parameters: dict):
    """The BertForTokenClassification described by `config` (eager attention), with these parameters."""
    from transformers import BertConfig, BertForTokenClassification

    model = BertForTokenClassification(BertConfig(**config))
    loaded = model.load_state_dict(parameters, strict=False)  # buffers (position ids) are the model's own
    names = dict(model.named_parameters())
    wrong = [k for k in loaded.missing_keys if k in names] + list(loaded.unexpected_keys)
    if wrong:
        raise ValueError(f"the parameters sent do not fit the model built here: {wrong[:5]}")
    return model.eval()


def batch_loader(batches: list):
    """The data-loader builder SparseML's GradSampler wants: (args, kwargs, loss target) per batch,
    the loss target unused because the model computes its own loss from `labels`."""

    def build(_overrides):  # grad_sampler_kwargs from the recipe: none are used
        return [((), dict(batch), None) for batch in batches]

    return build


def model_loss(outputs, _target):
    """GradSampler's loss function: the model's own mean token loss, as in mmakit's gradients."""
    return outputs.loss


def dense_losses(model, batches: list) -> list[float]:
    """The model's loss on each batch: compared with the caller's to show both built the same model."""
    import torch

    with torch.no_grad():
        return [float(model(**batch).loss) for batch in batches]


def prune(dense, recipe: str, batches: list) -> dict:
    """A copy of `dense` pruned one-shot by `recipe`; its parameters."""
    from sparseml.pytorch.optim import ScheduledModifierManager

    model = copy.deepcopy(dense)
    manager = ScheduledModifierManager.from_yaml(recipe)
    manager.apply(model, grad_sampler={"data_loader_builder": batch_loader(batches), "loss_function": model_loss})
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def run(request: dict) -> dict:
    import sparseml
    import torch
    import transformers

    torch.set_num_threads(int(request.get("threads") or 1))
    tensors = torch.load(request["tensors"], weights_only=True)
    batches = tensors["batches"]
    dense = build_model(request["config"], tensors["state_dict"])
    pruned, seconds = {}, {}
    for key, recipe in request["recipes"].items():
        start = time.perf_counter()
        pruned[key] = prune(dense, recipe, batches)
        seconds[key] = round(time.perf_counter() - start, 2)
    torch.save(pruned, request["output"])
    return {"ok": True, "sparseml": sparseml.__version__, "transformers": transformers.__version__,
            "torch": torch.__version__, "dense_losses": dense_losses(dense, batches), "seconds": seconds}


def main() -> None:
    # Keep the protocol on its own descriptor and send everything libraries print to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        answer = run(json.loads(sys.stdin.read()))
    except Exception as exc:  # report any failure as an answer: the caller names it
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-3000:]}
    protocol.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
