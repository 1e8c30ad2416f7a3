"""mmakit: the package behind the study's notebooks (data, models, training, evaluation,
compression techniques, export and CPU benchmarks, result records)."""
__version__ = "0.1.0"
