"""kronbench: a reproducible harness for Kronecker-decomposition compression of BERT and GPT-2."""

__version__ = "0.1.0"
