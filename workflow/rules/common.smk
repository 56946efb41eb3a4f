import os
import sys

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# The CLI every rule calls: the one installed next to the Python running Snakemake (.venv/bin), so rules work
# without an activated venv.
KB = os.path.join(os.path.dirname(sys.executable), "kronbench")


def count_targets():
    return [f"results/counts/{model}/{preset}.json"
            for model, presets in config["count"]["presets"].items() for preset in presets]
