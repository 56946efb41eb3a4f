# -------------------------------------------------------------------------------------------- distill_pretrain
rule distill_pretrain:
    """student1 = distill_pretrain(student0, teacher = the pretrained base, data = kd_corpus): KD pre-training
    (KroneckerBERT stage 1, KnGPT2's light ILKD pre-training). Task-independent, one per seed. With
    stages.distill_pretrain.rounds it runs as several runs, seed<k>-round<j>/ before the last, seed<k>/, each
    from the run before with its own settings (Plan.pretrain_run)."""
    input:
        student=lambda w: f"{P.pretrain_student(w.model, w.preset, w.seed, w.round, w.chain)}/summary.json",
        base=plan("base_inputs", "model"),
        data=P.data_done(config["kd_corpus"]),
        tokens=lambda w: P.corpus_tokens(w.model, P.pretrain_settings(w.model, w.preset, w.seed, w.round)),
    output:
        f"{R}/runs/{{model}}/_general/{{chain}}-{{preset}}/seed{{seed}}{{round}}/summary.json",
    log:
        f"{R}/logs/distill_pretrain/{{model}}/{{chain}}-{{preset}}/seed{{seed}}{{round}}.log",
    benchmark:
        f"{R}/benchmarks/distill_pretrain/{{model}}/{{chain}}-{{preset}}/seed{{seed}}{{round}}.tsv"
    wildcard_constraints:
        round=r"(-round[1-9]\d*)?",
        chain=CHAIN_PATTERN,
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        student=lambda w, input: model_dir(input.student),
        teacher=plan("base_model", "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.pretrain_settings(w.model, w.preset, w.seed, w.round)),
    message:
        "KD pre-training {wildcards.model} {wildcards.chain}-{wildcards.preset} on {params.data}, seed {wildcards.seed}{wildcards.round}"
    conda:
        ENV
    shell:
        "{params.cmd} distill-pretrain --student {params.student:q} --teacher {params.teacher:q} "
        "--data {params.data:q} --tokens {input.tokens:q} --out {params.run:q} --label {wildcards.model} "
        "--method {wildcards.chain} --config {params.settings} {params.keep} > {log} 2>&1"


# ------------------------------------------------------------------------------------------------ distill_task
rule distill_task:
    """student2 = distill_task(student, teacher = the fine-tuned teacher, task): task ILKD (KroneckerBERT stage 2;
    the student's prediction layer starts from the teacher's) for every method whose record names this stage
    (kronbench.methods): kronecker-<preset> from student1, distil from the distil student, and KroneckerBERT
    Table 6's ablations from student0 or student1, with or without the teacher."""
    input:
        student=lambda w: f"{P.start_run(w.model, w.run, w.seed)}/summary.json",
        teacher=lambda w: [f"{run}/summary.json" for run in P.task_teacher(w.model, w.task, w.run, w.seed)],
        data=plan("data_done", "task"),
        transfer=plan("transfer_inputs", "model", "task", "run", "seed"),
    output:
        f"{R}/runs/{{model}}/{{task}}/{{run}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/distill_task/{{model}}/{{task}}/{{run}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/distill_task/{{model}}/{{task}}/{{run}}/seed{{seed}}.tsv"
    wildcard_constraints:
        run=run_pattern("distill_task"),
    threads: TORCH_THREADS
    params:
        cmd=P.launcher(),
        student=lambda w, input: model_dir(input.student),
        teacher=lambda w, input: " ".join(f"--teacher {shlex.quote(model_dir(t))}" for t in input.teacher),
        method=lambda w: parse_run(w.run)[0],
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: run_dir(output),
        keep=keep_flag,
        settings=lambda w: P.settings_arg(P.task_settings(w.model, w.task, w.run, w.seed)),
    message:
        "Task ILKD of {wildcards.model} {wildcards.run} on {wildcards.task}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} distill-task --student {params.student:q} {params.teacher} --data {params.data:q} "
        "--out {params.run:q} --label {wildcards.model} --method {params.method} --config {params.settings} "
        "{params.keep} > {log} 2>&1"
