# Baselines and ablations (models.<m>.baselines / ablations in the config; kronbench/baselines/stages.py):
#   distil:   baseline distil (base, kd_corpus) -> distill --stage task --method distil (teacher, task)
#   rosita:   baseline rosita (teacher, task), a finished student, scored as it is
#   ablations (KroneckerBERT Table 6): distill --stage task --method <ablation> from the Kronecker chain's
#   student0 (compress) or student1 (KD pre-training), with or without the teacher (ABLATIONS in common.smk).


# ---------------------------------------------------------------------------------------------- baseline_distil
rule baseline_distil:
    """DistilBERT/DistilGPT2-style student: the pretrained base with half its blocks (alternate layers), KD-pretrained
    on kd_corpus against the base. Task-independent, one per seed, like the Kronecker student1."""
    input:
        base=lambda w: base_inputs(w.model),
        data=data_done(config["kd_corpus"]),
        tokens=distil_tokens,
    output:
        f"{R}/runs/{{model}}/_general/distil/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/baseline_distil/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/baseline_distil/{{model}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        teacher=lambda w: base_model(w.model),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=lambda w: stage_flags("baseline_distil", w.model, task=config["kd_corpus"], seed=w.seed),
    message:
        "Distil baseline of {wildcards.model}: KD pre-training on {params.data}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} baseline distil --teacher {params.teacher:q} --data {params.data:q} --tokens {input.tokens:q} "
        "--out {params.run:q} --label {wildcards.model} {params.settings} {params.keep} > {log} 2>&1"


# -------------------------------------------------------------------------------------------------- distil_task
rule distil_task:
    """Task ILKD of the distil student from the fine-tuned teacher (distill_task settings, method distil); its
    layer map is the distil layers stored in the student's config (distill reads them when loss.layer_map is
    unset: the summary's layer_map)."""
    input:
        student=f"{R}/runs/{{model}}/_general/distil/seed{{seed}}/summary.json",
        teacher=f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
        data=lambda w: data_done(w.task),
        transfer=lambda w: transfer_input(w, "distil"),
    output:
        f"{R}/runs/{{model}}/{{task}}/distil/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/distil_task/{{model}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/distil_task/{{model}}/{{task}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        student=lambda w, input: os.path.join(os.path.dirname(input.student), "model"),
        teacher=lambda w, input: os.path.join(os.path.dirname(input.teacher), "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=lambda w: stage_flags("distill_task", w.model, task=w.task, seed=w.seed, method="distil"),
    message:
        "Task ILKD of the {wildcards.model} distil student on {wildcards.task}, seed {wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} distill --stage task --student {params.student:q} --teacher {params.teacher:q} "
        "--data {params.data:q} --out {params.run:q} --label {wildcards.model} --method distil "
        "{params.settings} {params.keep} > {log} 2>&1"


# ---------------------------------------------------------------------------------------------- baseline_rosita
rule baseline_rosita:
    """ROSITA-style student of the fine-tuned teacher: depth pruning, then iterative width pruning with KD, at the
    budget of rosita.targets (the row's preset names the Kronecker preset it is compared with). The stage fails
    unless the pruned backbone is within 5% of the targets' parameter count."""
    input:
        teacher=f"{R}/runs/{{model}}/{{task}}/teacher/seed{{seed}}/summary.json",
        data=lambda w: data_done(w.task),
    output:
        f"{R}/runs/{{model}}/{{task}}/rosita-{{preset}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/baseline_rosita/{{model}}/{{task}}/{{preset}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/baseline_rosita/{{model}}/{{task}}/{{preset}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        teacher=lambda w, input: os.path.join(os.path.dirname(input.teacher), "model"),
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=lambda w: stage_flags("baseline_rosita", w.model, preset=w.preset, task=w.task, seed=w.seed),
    message:
        "ROSITA baseline of {wildcards.model} at {wildcards.preset}'s budget on {wildcards.task}, seed "
        "{wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} baseline rosita --teacher {params.teacher:q} --data {params.data:q} --out {params.run:q} "
        "--label {wildcards.model} --preset {wildcards.preset:q} {params.settings} {params.keep} > {log} 2>&1"


# ------------------------------------------------------------------------------------------------ ablation_task
rule ablation_task:
    """KroneckerBERT Table 6: the task stage of decompose-only (student0, no teacher, CE), no-kd-pretrain (student0,
    task ILKD) and no-task-kd (student1, no teacher, CE); distill_task settings, selected by method in overrides."""
    input:
        student=lambda w: f"{ablation_student(w)}/summary.json",
        teacher=lambda w: [f"{run}/summary.json" for run in ablation_teacher(w)],
        data=lambda w: data_done(w.task),
        transfer=lambda w: transfer_input(w, w.ablation) if ABLATIONS[w.ablation]["kd"] else [],
    output:
        f"{R}/runs/{{model}}/{{task}}/{{ablation}}-{{preset}}/seed{{seed}}/summary.json",
    log:
        f"{R}/logs/ablation_task/{{model}}/{{task}}/{{ablation}}-{{preset}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/ablation_task/{{model}}/{{task}}/{{ablation}}-{{preset}}/seed{{seed}}.tsv"
    threads: TORCH_THREADS
    params:
        cmd=launcher(),
        student=lambda w: f"{ablation_student(w)}/model",
        teacher=ablation_teacher_flag,
        data=lambda w, input: os.path.dirname(input.data),
        run=lambda w, output: os.path.dirname(output[0]),
        keep=keep_flag,
        settings=ablation_flags,
    message:
        "Ablation {wildcards.ablation} of {wildcards.model} {wildcards.preset} on {wildcards.task}, seed "
        "{wildcards.seed}"
    conda:
        ENV
    shell:
        "{params.cmd} distill --stage task --student {params.student:q} {params.teacher} --data {params.data:q} "
        "--out {params.run:q} --label {wildcards.model} --method {wildcards.ablation} {params.settings} {params.keep} "
        "> {log} 2>&1"
