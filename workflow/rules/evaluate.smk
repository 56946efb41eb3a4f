# Latency is not timed here: compare_latency (below) times every checkpoint of a model family side by side and
# gather puts its figures into the rows. Scoring runs on config evaluate.device (auto: the job's GPU when it has
# one, as profiles/slurm gives evaluate jobs; the rows' eval_device says where).


# ------------------------------------------------------------------------------------------------ evaluate_task
rule evaluate_task:
    """Rows of one checkpoint on one split of a task: the model fine-tuned on the task itself, or on the
    task's YAML source_task for an OOD set (MRPC -> PAWS, SST-2 -> IMDb, RTE -> HANS, embedded-pair -> -news)."""
    input:
        run=lambda w: P.eval_target(w.model, w.task, w.run, w.seed, lm=False)[1],
        data=plan("data_done", "task"),
    output:
        f"{R}/rows/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.jsonl",
    log:
        f"{R}/logs/evaluate_task/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_task/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}.tsv"
    threads: TORCH_THREADS
    params:
        checkpoint=lambda w: P.eval_target(w.model, w.task, w.run, w.seed, lm=False)[0],
        method=lambda w: parse_run(w.run)[0],
        data=lambda w, input: os.path.dirname(input.data),
        device=config["evaluate"]["device"],
    message:
        "Scoring {wildcards.model} {wildcards.run} seed {wildcards.seed} on {wildcards.task}/{wildcards.split}"
    conda:
        ENV
    shell:
        "kronbench evaluate-task --model {params.checkpoint:q} --data {params.data:q} --split {wildcards.split} "
        "--label {wildcards.model} --method {params.method} --seed {wildcards.seed} --device {params.device} "
        "--out {output:q} > {log} 2>&1"


# -------------------------------------------------------------------------------------------------- evaluate_lm
rule evaluate_lm:
    """Perplexity rows under one protocol (the task YAML's `protocols`; the protocol names the split): the
    pretrained base (teacher) and the KD-pretrained students, before any task stage (KnGPT2, krony-PT)."""
    input:
        run=lambda w: P.eval_target(w.model, w.task, w.run, w.seed, lm=True)[1],
        data=plan("data_done", "task"),
    output:
        f"{R}/rows/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.jsonl",
    log:
        f"{R}/logs/evaluate_lm/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate_lm/{{model}}/{{task}}/{{run}}/seed{{seed}}/{{split}}-{{protocol}}.tsv"
    threads: TORCH_THREADS
    params:
        checkpoint=lambda w: P.eval_target(w.model, w.task, w.run, w.seed, lm=True)[0],
        method=lambda w: parse_run(w.run)[0],
        data=lambda w, input: os.path.dirname(input.data),
        device=config["evaluate"]["device"],
    message:
        "Perplexity of {wildcards.model} {wildcards.run} seed {wildcards.seed} on {wildcards.task} "
        "({wildcards.protocol})"
    conda:
        ENV
    shell:
        "kronbench evaluate-lm --model {params.checkpoint:q} --data {params.data:q} --split {wildcards.split} "
        "--protocol {wildcards.protocol} --label {wildcards.model} --method {params.method} "
        "--seed {wildcards.seed} --device {params.device} --out {output:q} > {log} 2>&1"


# ---------------------------------------------------------------------------------------------- compare_latency
rule compare_latency:
    """Latency of every checkpoint of one model family (bert, gpt2) with rows at this seed: loaded into one
    process and timed round-robin until each median is within ±target (kronbench.evaluate.latency); the
    job takes all of --cores, and on SLURM a whole node (profiles/slurm)."""
    input:
        lambda w: [f for e in P.latency_plan(w.family, w.seed) for f in e["inputs"]],
    output:
        f"{R}/latency/{{family}}/seed{{seed}}.json",
    log:
        f"{R}/logs/compare_latency/{{family}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/compare_latency/{{family}}/seed{{seed}}.tsv"
    wildcard_constraints:
        family="|".join(FAMILY_NAMES),
    threads: LATENCY_THREADS
    params:
        plan=plan("latency_arg", "family", "seed"),
        flags=P.latency_flags(),
    message:
        "Timing the {wildcards.family}-family checkpoints of seed {wildcards.seed} side by side"
    conda:
        ENV
    shell:
        "kronbench compare-latency --plan {params.plan:q} --seed {wildcards.seed} {params.flags} --out {output:q} "
        "> {log} 2>&1"
