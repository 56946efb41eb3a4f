# Glue between Snakemake and the plan (kronbench.plan, unit-tested in tests/test_plan.py): validate the config,
# check its names, and expose the Plan every rule asks. Each rule names inputs, outputs, log and params and calls
# the `kronbench` subcommand of its own name (rule distill_task -> `kronbench distill-task` ->
# kronbench.distill.stages.distill_task). Paths: kronbench/plan/layout.py.
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from kronbench.errors import KronbenchError
from kronbench.methods import CHAINS, parse_run, run_pattern
from kronbench.models.families import FAMILIES as FAMILY_NAMES  # compare_latency per family: bert|gpt2|llama
from kronbench.plan import FIGURES, TABLES, Plan, config_errors

validate(config, schema="../schemas/config.schema.yaml")

# Rules call `kronbench` (and the launcher, e.g. accelerate) from the bin directory of the Python running Snakemake
# (.venv/bin), put first on PATH here, so they work without an activated venv. Not a {KB} variable holding its
# absolute path: `snakemake --lint` rejects globals in shell commands, and as a param the path would rerun every
# job once the checkout moves.
os.environ.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
ENV = "../envs/kronbench.yaml"

# Snakemake exports a job's threads as OMP_NUM_THREADS, which torch takes as its thread count. Training and
# compress jobs: config `threads` (default 1: one-thread jobs side by side, the best throughput for a wide DAG on
# few cores; null = all of --cores, for a linear chain). compare_latency takes all of --cores: nothing of ours
# runs beside the timed forwards. The SLURM profile's set-threads replaces both per rule.
CORES = workflow.resource_settings.cores or 1  # None under a cluster executor without --cores
TORCH_THREADS = config["threads"] or CORES
LATENCY_THREADS = CORES

_errors = config_errors(config)
if _errors:
    raise WorkflowError("Invalid names in the config (nothing was run):\n  " + "\n  ".join(_errors))

P = Plan(config)
CHAIN_PATTERN = "|".join(CHAINS)  # compress and distill_pretrain runs: kronecker-<preset>, init-nkp-<preset>, ...
R, T = P.paths.results, P.paths.tables
MODELS = config["models"]

wildcard_constraints:
    model=r"[^/]+",
    task=r"[a-z0-9][^/]*",
    preset=r"[^/]+",
    seed=r"\d+",
    run=r"[^/]+",
    split=r"train|validation|test",
    protocol=r"[^/]+",
    arch=r"[^/]+",


def plan(method, *fields):
    """An input/params function calling Plan.<method> with these wildcards, e.g. plan("base_model", "model").
    A KronbenchError from the plan (a bad target) becomes Snakemake's WorkflowError, without a traceback."""
    def call(w):
        try:
            return getattr(P, method)(*(getattr(w, f) for f in fields))
        except KronbenchError as e:
            raise WorkflowError(str(e)) from None

    return call


def run_dir(output):
    """The run directory of a stage: the folder of its summary.json."""
    return os.path.dirname(output[0])


def model_dir(summary):
    """The model/ beside a run's summary.json."""
    return os.path.join(os.path.dirname(summary), "model")


def keep_flag(w, output):
    """--keep-intermediate when config keep_intermediate is true. It takes `output` so that Snakemake counts the
    param as derived from the output and leaves it out of its params rerun trigger: the flag only decides what
    stays on disk, so toggling it must not retrain anything."""
    return "--keep-intermediate" if config["keep_intermediate"] else ""
