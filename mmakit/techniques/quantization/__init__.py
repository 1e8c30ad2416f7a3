"""INT8 quantization of the study's models: four methods behind one `quantize` call."""
from mmakit.techniques.quantization.pipeline import (
    METHODS,
    QATSpec,
    QuantResult,
    quantize,
)
from mmakit.techniques.quantization.ptq import QuantSettings

__all__ = ["METHODS", "QATSpec", "QuantResult", "QuantSettings", "quantize"]
