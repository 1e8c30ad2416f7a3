"""INT8 quantization of the study's models: four methods behind one `quantize` call."""
from .pipeline import METHODS, QATSpec, QuantResult, quantize
from .ptq import QuantSettings

__all__ = ["METHODS", "QATSpec", "QuantResult", "QuantSettings", "quantize"]
