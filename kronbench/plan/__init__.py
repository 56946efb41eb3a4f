"""The plan: a config's jobs, paths and settings, importable and unit-tested without Snakemake.

    config = load_config(["config/paper.yaml"])   # merged as Snakemake merges --configfile, schema defaults set
    errors = config_errors(config)                # names checked against the registries, before any job
    plan = Plan(config)                           # what every rule asks (workflow/rules/common.smk is glue)
"""

from __future__ import annotations

from pathlib import Path

from kronbench.plan.grid import FIGURES, TABLES, Plan
from kronbench.plan.layout import GENERAL, Layout
from kronbench.plan.names import config_errors
from kronbench.plan.settings import merge

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def load_config(paths, overrides: dict | None = None) -> dict:
    """Config files merged in order (mappings merge, everything else replaces: Snakemake's --configfile), then
    `overrides` (--config), validated against the workflow's schema with its defaults filled in."""
    import yaml
    from snakemake.utils import validate

    config: dict = {}
    for p in paths:
        merge(config, yaml.safe_load(Path(p).read_text()) or {})
    merge(config, overrides or {})
    validate(config, schema=str(SCHEMA))
    return config


__all__ = ["FIGURES", "GENERAL", "Layout", "Plan", "TABLES", "config_errors", "load_config"]
