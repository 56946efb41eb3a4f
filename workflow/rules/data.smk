# ------------------------------------------------------------------------------------------------ prepare_data
rule prepare_data:
    """Prepared splits of one task (<split>.parquet + manifest.json) from its configured source (data.source):
    kronbench.data.prepare.prepare_data.

    manifest.json is written last, inside the directory that prepare-data swaps in atomically; it is the declared
    output. update(): Snakemake must not delete it before a rerun, because prepare-data only replaces a directory
    that holds its manifest (or is empty). Small (< 1 MB), it is checksummed, so a `dvc checkout` of results/data
    (new mtimes, same content) does not make the downstream jobs rerun (see profiles/default).
    """
    output:
        update(f"{R}/data/{{task}}/manifest.json"),
    log:
        f"{R}/logs/prepare_data/{{task}}.log",
    benchmark:
        f"{R}/benchmarks/prepare_data/{{task}}.tsv"
    params:
        flags=plan("prepare_data_flags", "task"),
        out=lambda w, output: os.path.dirname(output[0]),
    message:
        "Preparing {wildcards.task} ({params.flags})"
    conda:
        ENV
    shell:
        "kronbench prepare-data {wildcards.task} {params.flags} --out {params.out:q} > {log} 2>&1"


# --------------------------------------------------------------------------------------------- tokenize_corpus
rule tokenize_corpus:
    """The KD corpus's train split tokenised once for every KD pre-training job of one model (distill_pretrain,
    baseline_distil; Plan.corpus_tokens names the file they read): blocks of <what> tokens, or with <what> =
    sentences the tokenised sentences that data.format sentence_pairs draws its pairs from. <model> names the
    tokenizer, its base model's. The .json manifest (corpus and .npz sha256, tokenizer revision and fingerprint) is
    written last, each file atomically; the stages check it against their own run before training."""
    input:
        data=plan("data_done", "corpus"),
        base=plan("base_inputs", "model"),
    output:
        tokens=f"{R}/tokens/{{corpus}}/{{model}}-{{what}}.npz",
        manifest=f"{R}/tokens/{{corpus}}/{{model}}-{{what}}.json",
    log:
        f"{R}/logs/tokenize_corpus/{{corpus}}/{{model}}-{{what}}.log",
    benchmark:
        f"{R}/benchmarks/tokenize_corpus/{{corpus}}/{{model}}-{{what}}.tsv"
    wildcard_constraints:
        corpus=r"[a-z0-9][^/]*",
        what=r"\d+|sentences",
    params:
        data=lambda w, input: os.path.dirname(input.data),
        tokenizer=plan("base_model", "model"),
        format=lambda w: "--format sentences" if w.what == "sentences" else f"--block-size {w.what}",
    message:
        "Tokenising {wildcards.corpus} for {wildcards.model} ({wildcards.what})"
    conda:
        ENV
    shell:
        "kronbench tokenize-corpus --data {params.data:q} --tokenizer {params.tokenizer:q} {params.format} "
        "--out {output.tokens:q} > {log} 2>&1"
