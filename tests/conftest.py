"""Test-wide settings: never touch the Hugging Face hub (each failed lookup retries for ~25 s otherwise)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("KRONBENCH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "tests"))
