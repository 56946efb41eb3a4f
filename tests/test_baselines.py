"""Baselines on tiny random BERT/GPT-2: pruning equals masking, distil students copy the chosen layers, counts."""

import copy

import pytest
import torch
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2ForSequenceClassification, GPT2LMHeadModel)

from kronbench.baselines import (DISTIL_TEMPERATURE, DISTIL_WEIGHTS, FactorizedEmbedding, TiedFactorizedHead,
                                 alternate_layers, count_target_params, distil_layer_map, drop_layers,
                                 factorize_embedding, make_distil_student, prune_ffn, prune_heads, prune_step,
                                 restructure, rosita_targets, taylor_importance, width_schedule)
from kronbench.errors import KronbenchError
from kronbench.models.counting import count_params
from kronbench.models.registry import get_config

TINY_BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, pad_token_id=0, attn_implementation="eager")
TINY_GPT2 = dict(vocab_size=96, n_embd=32, n_layer=4, n_head=4, n_positions=64, n_inner=64, bos_token_id=1,
                 eos_token_id=2, pad_token_id=0, attn_implementation="eager")
HEADS = {0: [1, 3], 2: [0], 3: [0, 1, 2]}  # layer 1 untouched
FFN = {0: [0, 5, 63], 1: list(range(0, 64, 3)), 3: [7]}


def _model(cls):
    torch.manual_seed(0)
    config = BertConfig(**TINY_BERT) if cls.__name__.startswith("Bert") else GPT2Config(**TINY_GPT2)
    return cls(config).eval()


def _ids(shape=(2, 9)):
    return torch.randint(3, 96, shape, generator=torch.Generator().manual_seed(1))


def _out(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False)[0]


def _zero_in_features(mod, idx):
    """Mask: zero the in-features `idx` of an output projection (nn.Linear (out, in) / Conv1D (in, out))."""
    with torch.no_grad():
        if isinstance(mod, torch.nn.Linear):
            mod.weight[:, idx] = 0
        else:
            mod.weight[idx, :] = 0


def _blocks(model):
    return model.base_model.encoder.layer if model.config.model_type == "bert" else model.base_model.h


def _attn_out(b):
    return b.attention.output.dense if hasattr(b, "attention") else b.attn.c_proj


def _ffn_out(b):
    return b.output.dense if hasattr(b, "output") else b.mlp.c_proj


# --------------------------------------------------------------------------------------------- (a) prune = mask
@pytest.mark.parametrize("cls", [BertModel, BertForSequenceClassification, GPT2LMHeadModel])
def test_pruned_heads_and_ffn_equal_masked(cls):
    model, ids = _model(cls), _ids()
    masked = copy.deepcopy(model)
    for layer, keep in HEADS.items():  # a removed head contributes only through its output-projection columns
        gone = [h for h in range(4) if h not in keep]
        _zero_in_features(_attn_out(_blocks(masked)[layer]), [h * 8 + j for h in gone for j in range(8)])
    for layer, keep in FFN.items():
        _zero_in_features(_ffn_out(_blocks(masked)[layer]), [i for i in range(64) if i not in keep])
    prune_heads(model, HEADS)
    prune_ffn(model, FFN)
    torch.testing.assert_close(_out(model, ids), _out(masked, ids), atol=1e-5, rtol=1e-5)
    assert model.config.kronbench_pruned["heads"] == [2, 4, 1, 3]
    assert model.config.kronbench_pruned["ffn"] == [3, 22, 64, 1]
    assert count_params(model) < count_params(masked)
    if cls is GPT2LMHeadModel:  # split_size / num_heads drive the fused QKV split and the KV cache
        attn = model.transformer.h[0].attn
        assert (attn.num_heads, attn.split_size, attn.c_attn.weight.shape) == (2, 16, (32, 48))
        with torch.no_grad():
            model(input_ids=ids, use_cache=True)
    else:
        attn = model.base_model.encoder.layer[2].attention.self
        assert (attn.num_attention_heads, attn.all_head_size, attn.query.weight.shape) == (1, 8, (8, 32))


def test_prune_errors():
    model = _model(BertModel)
    with pytest.raises(KronbenchError, match="at least one"):
        prune_heads(model, {0: []})
    with pytest.raises(KronbenchError, match="out of range"):
        prune_ffn(model, {0: [64]})
    with pytest.raises(KronbenchError, match="layer 7"):
        prune_heads(model, {7: [0]})


# --------------------------------------------------------------------------------------------- (b) distil
def test_alternate_layers_rule():
    assert alternate_layers(12) == [0, 2, 4, 7, 9, 11]  # DistilBERT's extract_distilbert.py choice
    assert alternate_layers(6) == [0, 3, 5]
    assert alternate_layers(4) == [0, 3]
    assert DISTIL_WEIGHTS == {"logit_kd": 5.0, "lm": 2.0, "cos": 1.0} and DISTIL_TEMPERATURE == 2.0


@pytest.mark.parametrize("cls", [BertModel, BertForSequenceClassification, BertForMaskedLM, GPT2LMHeadModel,
                                 GPT2ForSequenceClassification])
@pytest.mark.parametrize("layers", ["alternate", [1, 2]])
def test_distil_student_copies_chosen_layers(cls, layers):
    teacher = _model(cls)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = make_distil_student(teacher, layers)
    chosen = [0, 3] if layers == "alternate" else layers
    assert student.config.kronbench_distil_layers == chosen and student.config.num_hidden_layers == 2
    assert distil_layer_map(student) == list(enumerate(chosen))
    assert teacher.config.num_hidden_layers == 4 and len(_blocks(teacher)) == 4  # teacher untouched
    t_blocks, s_blocks = _blocks(teacher), _blocks(student)
    for s, t in enumerate(chosen):
        ts, ss = t_blocks[t].state_dict(), s_blocks[s].state_dict()
        assert ts.keys() == ss.keys() and all(torch.equal(ts[k], ss[k]) for k in ts)
    prefix = "encoder.layer." if cls.__name__.startswith("Bert") else "h."
    rest = {k: v for k, v in student.state_dict().items() if prefix not in k}  # embeddings, ln_f, pooler, heads
    assert rest and all(torch.equal(v, before[k]) for k, v in rest.items())
    if cls in (BertForMaskedLM, GPT2LMHeadModel):
        assert student.get_output_embeddings().weight is student.get_input_embeddings().weight  # still tied
    assert _out(student, _ids()).shape[0] == 2


def test_distil_errors():
    with pytest.raises(KronbenchError, match="alternate"):
        make_distil_student(_model(BertModel), "odd")
    with pytest.raises(KronbenchError, match="out of range"):
        make_distil_student(_model(BertModel), [0, 9])
    with pytest.raises(KronbenchError, match="make_distil_student"):
        distil_layer_map(_model(BertModel))


# --------------------------------------------------------------------------------------------- (c) depth
def test_drop_layers_bottom_equals_truncated_forward():
    model, ids = _model(BertModel), _ids()
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True).hidden_states[2]  # after block 1
    drop_layers(model, range(2))  # ROSITA keeps the bottom layers
    torch.testing.assert_close(_out(model, ids), ref)
    assert model.config.num_hidden_layers == 2 and len(model.encoder.layer) == 2


def test_drop_layers_gpt2_renumbers_cache_layers():
    model, ids = _model(GPT2LMHeadModel), _ids()
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states[1]
    drop_layers(model, [0, 3])
    assert model.config.n_layer == 2 and [b.attn.layer_idx for b in model.transformer.h] == [0, 1]
    with torch.no_grad():  # the KV cache has config.n_layer slots: old index 3 would not fit
        out = model(input_ids=ids, output_hidden_states=True, use_cache=True)
    torch.testing.assert_close(out.hidden_states[1], ref)
    assert len(out.past_key_values) == 2


def test_drop_layers_follows_inverse_layer_idx_scaling():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**TINY_GPT2, scale_attn_by_inverse_layer_idx=True))
    drop_layers(model, [1, 3])  # block 3 becomes block 1: scaling 1/(√8·2), as a model built from the config has
    fresh = GPT2LMHeadModel(model.config)
    assert [b.attn.scaling for b in model.transformer.h] == [b.attn.scaling for b in fresh.transformer.h]


# --------------------------------------------------------------------------------------------- (d) embedding
@pytest.mark.parametrize("cls", [BertModel, BertForMaskedLM, GPT2LMHeadModel])
def test_factorized_embedding_full_rank_reproduces(cls):
    model, ids = _model(cls), _ids()
    ref = _out(model, ids)
    old = model.get_input_embeddings().weight.detach().clone()
    factorize_embedding(model, 32)  # full rank: min(V, d) = 32
    emb = model.get_input_embeddings()
    assert isinstance(emb, FactorizedEmbedding) and emb.lookup.weight.shape == (96, 32)
    torch.testing.assert_close(emb.dense_weight(), old, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_out(model, ids), ref, atol=1e-4, rtol=1e-4)  # LM heads: tied logits too
    if cls is not BertModel:
        assert isinstance(model.get_output_embeddings(), TiedFactorizedHead)
    factorize_embedding(model, 4)  # iterative: re-factorize the product
    assert model.get_input_embeddings().rank == 4 and model.config.kronbench_pruned["emb_rank"] == 4
    with pytest.raises(KronbenchError, match="only go down"):
        factorize_embedding(model, 8)


# --------------------------------------------------------------------------------------------- (e) importance
@pytest.mark.parametrize("cls", [BertModel, GPT2LMHeadModel])
def test_taylor_importance_ranks_zeroed_units_lowest(cls):
    model = _model(cls)
    _zero_in_features(_attn_out(_blocks(model)[1]), list(range(16, 24)))  # layer 1, head 2 outputs nothing
    _zero_in_features(_ffn_out(_blocks(model)[0]), [5])  # layer 0, neuron 5

    def loss_fn(m, batch):
        return m(input_ids=batch, use_cache=False)[0].pow(2).mean()  # any scalar of the outputs

    batches = [_ids(), _ids((3, 7))]
    model.train()
    scores = taylor_importance(model, batches, loss_fn)
    assert model.training and all(p.grad is None for p in model.parameters())  # mode restored, no grads left
    assert len(scores["heads"][1]) == 4 and len(scores["ffn"][0]) == 64
    assert scores["heads"][1].argmin() == 2 and scores["heads"][1][2] == 0
    assert scores["ffn"][0].argmin() == 5
    kept = prune_step(model, scores, {"heads": 3, "ffn": 60})
    assert 2 not in kept["heads"][1] and 5 not in kept["ffn"][0]
    assert model.config.kronbench_pruned["heads"] == [3] * 4
    with pytest.raises(KronbenchError, match="recompute"):
        prune_step(model, scores, {"heads": 2})
    prune_step(model, {}, {"emb_rank": 6})
    assert model.get_input_embeddings().rank == 6


def test_width_schedule():
    assert [width_schedule(12, 2, s, 4) for s in range(6)] == [12, 10, 7, 5, 2, 2]  # 9.5 → 10, 4.5 → 5
    assert width_schedule(3072, 512, 0, 10) == 3072
    with pytest.raises(KronbenchError, match="n_steps"):
        width_schedule(12, 2, 0, 0)


# --------------------------------------------------------------------------------------------- (f) counts
def test_rosita_targets_and_bert_base_count():
    assert rosita_targets(get_config("bert-base-uncased")) == {"layers": 8, "heads": 2, "ffn": 512, "emb_rank": 128}
    assert rosita_targets(get_config("minilm-l6")) == {"layers": 4, "heads": 2, "ffn": 256, "emb_rank": 64}
    bert = get_config("bert-base-uncased")
    assert count_target_params(bert, rosita_targets(bert)) == 14_473_216  # docs/sources.md §3.1: 14.47M with pooler


@pytest.mark.parametrize("cls", [BertModel, GPT2LMHeadModel])
def test_fully_pruned_count_matches_target(cls):
    model = _model(cls)
    config = copy.deepcopy(model.config)
    t = rosita_targets(config)  # 4 layers, 4 heads, FFN 64, d 32 → 3, 1, 11, 5
    assert t == {"layers": 3, "heads": 1, "ffn": 11, "emb_rank": 5}
    drop_layers(model, range(t["layers"]))
    prune_heads(model, {i: [i % 4] for i in range(t["layers"])})
    prune_ffn(model, {i: range(t["ffn"]) for i in range(t["layers"])})
    factorize_embedding(model, t["emb_rank"])
    assert count_params(model) == count_target_params(config, t)
    _out(model, _ids())
    # a fresh model from the pruned config gets the same shapes back (for loading a checkpoint)
    fresh = restructure(type(model)(model.config)).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(_out(fresh, _ids()), _out(model, _ids()))
