# kronbench workflow: teacher fine-tuning → Kronecker init → KD pre-training → task ILKD → evaluation → tables.
#   snakemake --cores 2 all_tables                       # embedded default (config/config.yaml)
#   snakemake --cores 8 --configfile config/paper.yaml all_tables
configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/count.smk"
include: "workflow/rules/tables.smk"


rule all:
    default_target: True
    input:
        rules.table_presets.output,


rule all_tables:
    input:
        rules.table_presets.output,
