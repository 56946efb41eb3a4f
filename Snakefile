# kronbench workflow: teacher fine-tuning -> Kronecker init -> KD pre-training -> task ILKD -> evaluation -> rows
# -> results/all_results.jsonl -> tables and figures. One .smk per stage in workflow/rules/; every rule calls one
# `kronbench` subcommand.
#   snakemake --cores 2 all_tables all_figures                        # embedded default (config/config.yaml)
#   snakemake --cores 8 --configfile config/paper.yaml all_tables     # paper scale (see profiles/slurm)
# A --configfile on the command line replaces config/config.yaml (Snakemake would otherwise deep-merge the two,
# keeping the default's models); --config key=value still overrides single keys.
import os

from snakemake.exceptions import WorkflowError

if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"

# --configfile takes several files, so a target typed after it is read as one. The files all, all_tables and
# all_figures at the root hold only this key, so Snakemake gets here instead of failing with FileNotFoundError.
if "__target_read_as_configfile__" in config:
    _typed = [os.path.basename(str(f)) for f in workflow.config_settings.configfiles
              if os.path.basename(str(f)).startswith("all")]
    raise WorkflowError(f"{', '.join(_typed)} after --configfile was read as a config file (--configfile takes "
                        "several). Put targets first: snakemake all_tables --configfile config/paper.yaml, or "
                        "end the list with --configfile=config/paper.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain_lm.smk"
include: "workflow/rules/finetune_teacher.smk"
include: "workflow/rules/compress.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/count.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


# Summaries of rows already written (seconds each): under a cluster executor they run on the submitting host
# instead of waiting in the queue.
localrules:
    gather,
    count_preset,
    table_presets,
    table_all,
    figures,


# The rows files are listed too: Snakemake would otherwise treat a deleted one as a spent intermediate and do
# nothing; this way it is re-evaluated and gather/tables/figures follow (no training reruns).
rule all:
    default_target: True
    input:
        rules.table_presets.output,
        rules.table_all.output,
        rules.gather.output.metrics,
        rules.figures.output,
        P.experiment_rows(),


rule all_tables:
    input:
        rules.table_presets.output,
        rules.table_all.output,
        rules.gather.output.metrics,
        P.experiment_rows(),


rule all_figures:
    input:
        rules.figures.output,
        P.experiment_rows(),
