# Latency is measured inside `kronbench evaluate` (evaluate.latency in the config) and stored in every row, so
# there is no separate latency rule. Evaluate jobs take all of --cores (EVAL_THREADS), so on one machine nothing
# runs beside them; on shared SLURM nodes numbers are noisy.


# ------------------------------------------------------------------------------------------------ evaluate_task
rule evaluate_task:
    """Rows of one checkpoint on one split of a task: the model fine-tuned on the task itself, or on the
    task's YAML source_task for an OOD set (MRPC -> PAWS, SST-2 -> IMDb, RTE -> HANS, embedded-pair -> -news)."""
    input:
        run=lambda w: eval_target(w, lm=False)[1],
        data=lambda w: data_done(w.task),
    output:
        f"{R}/rows/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.jsonl",
    log:
        f"{R}/logs/evaluate_task/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_task/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.tsv"
    threads: EVAL_THREADS
    params:
        checkpoint=lambda w: eval_target(w, lm=False)[0],
        method=lambda w: parse_run(w.run)[0],
        data=lambda w, input: os.path.dirname(input.data),
        latency=latency_flags(),
    message:
        "Scoring {wildcards.model} {wildcards.run} seed {wildcards.seed} on {wildcards.task}/{wildcards.split}"
    conda:
        ENV
    shell:
        "kronbench evaluate --model {params.checkpoint:q} --data {params.data:q} --split {wildcards.split} "
        "--label {wildcards.model} --method {params.method} --seed {wildcards.seed} {params.latency} "
        "--out {output:q} > {log} 2>&1"


# -------------------------------------------------------------------------------------------------- evaluate_lm
rule evaluate_lm:
    """Perplexity rows under one protocol (the task YAML's `protocols`; the protocol names the split): the
    pretrained base (teacher) and the KD-pretrained students, before any task stage (KnGPT2, krony-PT)."""
    input:
        run=lambda w: eval_target(w, lm=True)[1],
        data=lambda w: data_done(w.task),
    output:
        f"{R}/rows/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.jsonl",
    log:
        f"{R}/logs/evaluate_lm/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_lm/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.tsv"
    threads: EVAL_THREADS
    params:
        checkpoint=lambda w: eval_target(w, lm=True)[0],
        method=lambda w: parse_run(w.run)[0],
        data=lambda w, input: os.path.dirname(input.data),
        latency=latency_flags(),
    message:
        "Perplexity of {wildcards.model} {wildcards.run} seed {wildcards.seed} on {wildcards.task} "
        "({wildcards.protocol})"
    conda:
        ENV
    shell:
        "kronbench evaluate --model {params.checkpoint:q} --data {params.data:q} --split {wildcards.split} "
        "--protocol {wildcards.protocol} --label {wildcards.model} --method {params.method} "
        "--seed {wildcards.seed} {params.latency} --out {output:q} > {log} 2>&1"
