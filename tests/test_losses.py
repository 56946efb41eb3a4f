"""Feature capture and ILKD losses on tiny random BERT/GPT-2, each term against a hand-written computation.

The batch has a right-padded row, so every masking rule is exercised. Dropout is off in the configs: features and
losses are deterministic, and the training test is reproducible.
"""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2ForSequenceClassification, GPT2LMHeadModel)

from kronbench.distill.capture import capture
from kronbench.distill.losses import (PRESETS, NonFiniteLossError, attention_score_mse, hard_label_loss, ilkd_loss,
                                      logit_kd, masked_mse, resolve_layer_map, score_mask)
from kronbench.errors import KronbenchError
from kronbench.kron.linear import dense_weight
from kronbench.models.surgery import kroneckerize

TINY_BERT = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                 pad_token_id=0, attn_implementation="eager")
TINY_GPT2 = dict(vocab_size=96, n_embd=32, n_layer=2, n_head=4, n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0, pad_token_id=0, attn_implementation="eager")
SPEC = {"attention": {"a_shape": [8, 4]}, "ffn_in": {"a_shape": [16, 4]}, "ffn_out": {"a_shape": [4, 16]}}
B, T, PAD_FROM = 2, 8, 5  # row 1 is real up to position 5, then padding
ALL_DISTILL = {"emb_mse": 1.0, "att_mse": 1.0, "att_kl": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "cos": 1.0}


def _model(cls, seed=0, **overrides):
    torch.manual_seed(seed)
    config = (BertConfig if cls.__name__.startswith("Bert") else GPT2Config)(
        **{**(TINY_BERT if cls.__name__.startswith("Bert") else TINY_GPT2), **overrides})
    return cls(config).eval()


def _batch():
    ids = torch.randint(1, 96, (B, T), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, PAD_FROM:] = 0
    ids[1, PAD_FROM:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _pair(cls, **teacher_overrides):
    """A dense teacher (seed 0) and a compressed student (seed 1), with their features on the same batch."""
    teacher = _model(cls, 0, **teacher_overrides)
    student = _model(cls, 1)
    kroneckerize(student, SPEC)
    batch = _batch()
    with torch.no_grad():
        t = capture(teacher, batch)
    return capture(student, batch), t, batch


def _affine(x, module):
    """x Wᵀ + b with the dense-equivalent weight of a projection, dense or Kronecker (KroneckerConcat: Q|K|V parts)."""
    weight = module.to_dense() if hasattr(module, "to_dense") else dense_weight(module)  # (out, in)
    bias = torch.cat([p.bias for p in module.parts]) if hasattr(module, "parts") else module.bias
    return x @ weight.T + bias


def _heads(x, h):  # (B, T, H·d_k) -> (B, H, T, d_k)
    return x.view(x.shape[0], x.shape[1], h, -1).transpose(1, 2)


def _manual_scores(model, feats, layer):
    """QKᵀ/√d_k from the layer's own weights and its input hidden state, masked entries zeroed."""
    base, x = model.base_model, ([feats.embeddings] + feats.hidden)[layer]
    causal = model.config.model_type == "gpt2"
    if causal:
        block = base.h[layer]
        x = block.ln_1(x)
        q, k, _ = _affine(x, block.attn.c_attn).chunk(3, dim=-1)
        h = model.config.n_head
    else:
        attn = base.encoder.layer[layer].attention.self
        q, k = _affine(x, attn.query), _affine(x, attn.key)
        h = model.config.num_attention_heads
    o = torch.einsum("bhid,bhjd->bhij", _heads(q, h), _heads(k, h)) / math.sqrt(q.shape[-1] // h)
    keep = _batch()["attention_mask"].bool()[:, None, None, :]
    if causal:
        keep = keep & torch.ones(T, T, dtype=torch.bool).tril()
    return torch.where(keep, o, 0.0), keep


# --------------------------------------------------------------------------------------------- capture
@pytest.mark.parametrize("cls,compressed", [
    (BertModel, False), (BertForMaskedLM, True), (BertForSequenceClassification, True),
    (GPT2LMHeadModel, False), (GPT2LMHeadModel, True), (GPT2ForSequenceClassification, True)])
def test_scores_match_weights_and_softmax_gives_attentions(cls, compressed):
    model = _model(cls)
    if compressed:
        kroneckerize(model, SPEC)
    with torch.no_grad():
        f = capture(model, _batch())
    assert f.embeddings.shape == (B, T, 32) and len(f.hidden) == len(f.scores) == len(f.attentions) == 2
    assert f.logits is None if cls is BertModel else f.logits.shape[0] == B
    for layer in range(2):
        expected, keep = _manual_scores(model, f, layer)
        torch.testing.assert_close(f.scores[layer], expected, atol=1e-5, rtol=1e-5)
        probs = (f.scores[layer] + torch.where(keep, 0.0, -math.inf)).softmax(-1)  # softmax(O + mask)
        torch.testing.assert_close(probs, f.attentions[layer], atol=1e-6, rtol=1e-5)


def test_scores_without_attentions_work_on_sdpa():
    eager = _model(GPT2LMHeadModel)
    sdpa = _model(GPT2LMHeadModel, attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    with torch.no_grad():
        ref, f = capture(eager, _batch()), capture(sdpa, _batch(), attentions=False)
    assert f.attentions is None
    torch.testing.assert_close(f.scores, ref.scores)
    with pytest.raises(KronbenchError, match="eager"):
        capture(sdpa, _batch())


# --------------------------------------------------------------------------------------------- each term
def _manual_attention_terms(s, t, pairs):
    """Loops over (example, query, visible key): score MSE and teacher→student KL, both summed over layers."""
    mask = _batch()["attention_mask"].bool()
    mse, kl = 0.0, 0.0
    for i, j in pairs:
        diffs, kls = [], []
        for b in range(B):
            for q in range(T):
                if not mask[b, q]:
                    continue  # padded query row
                keys = [k for k in range(T) if mask[b, k] and (k <= q or not s.causal)]
                so, to = s.scores[i][b, :, q, keys], t.scores[j][b, :, q, keys]  # (H, keys)
                diffs.append(so - to)
                kls.append(F.kl_div(so.log_softmax(-1), to.softmax(-1), reduction="none").sum(-1))  # (H,)
        mse = mse + torch.cat(diffs, 1).pow(2).mean()
        kl = kl + torch.cat(kls).mean()
    return mse, kl


def _terms(s, t, batch, weights, **kw):
    return ilkd_loss(s, t, batch, weights, **kw)[1]


@pytest.mark.parametrize("cls", [BertForSequenceClassification, GPT2LMHeadModel])
def test_attention_terms_equal_manual(cls):
    s, t, batch = _pair(cls)
    terms = _terms(s, t, batch, {"att_mse": 1.0, "att_kl": 1.0})
    mse, kl = _manual_attention_terms(s, t, [(0, 0), (1, 1)])
    torch.testing.assert_close(terms["att_mse"], mse.detach())
    torch.testing.assert_close(terms["att_kl"], kl.detach())


@pytest.mark.parametrize("normalize", [False, True])
def test_gram_score_mse_equals_explicit_scores(normalize):
    """The Gram form of the BERT score MSE gives the explicit (B, H, T, T) computation's value and gradients."""
    s, t, batch = _pair(BertForSequenceClassification)
    mask = score_mask(s)
    explicit = sum(masked_mse(s.scores[l], t.scores[l], mask, normalize) for l in range(2))
    gram = attention_score_mse(s, t, [(0, 0), (1, 1)], normalize)
    torch.testing.assert_close(gram, explicit, rtol=1e-4, atol=1e-6)
    q0 = s.qk[0][0]
    g_explicit, = torch.autograd.grad(explicit, q0, retain_graph=True)
    g_gram, = torch.autograd.grad(gram, q0)
    torch.testing.assert_close(g_gram, g_explicit, rtol=1e-3, atol=1e-6)


def test_gram_score_mse_is_zero_for_identical_features():
    _, t, _ = _pair(BertForSequenceClassification)
    assert attention_score_mse(t, t, [(0, 0), (1, 1)], normalize=True).item() < 1e-5


@pytest.mark.parametrize("cls", [BertForSequenceClassification, GPT2LMHeadModel])
def test_token_terms_equal_manual(cls):
    s, t, batch = _pair(cls)
    m = batch["attention_mask"].bool()
    terms = _terms(s, t, batch, {"emb_mse": 1, "hid_mse": 1, "cos": 1})
    torch.testing.assert_close(terms["emb_mse"], F.mse_loss(s.embeddings[m], t.embeddings[m]).detach())
    hid = sum(F.mse_loss(s.hidden[l][m], t.hidden[l][m]) for l in range(2))
    torch.testing.assert_close(terms["hid_mse"], hid.detach())
    cos = F.cosine_embedding_loss(s.hidden[-1][m], t.hidden[-1][m], torch.ones(int(m.sum())))
    torch.testing.assert_close(terms["cos"], cos.detach())
    normed = _terms(s, t, batch, {"hid_mse": 1}, normalize=True)["hid_mse"]
    rel = sum(F.mse_loss(s.hidden[l][m], t.hidden[l][m]) / t.hidden[l][m].pow(2).mean() for l in range(2))
    torch.testing.assert_close(normed, rel.detach())


def test_logit_terms_equal_manual():
    s, t, _ = _pair(BertForSequenceClassification)
    tau = 2.0
    log_s, p_t = (s.logits / tau).log_softmax(-1), (t.logits / tau).softmax(-1)
    kl = F.kl_div(log_s, p_t, reduction="batchmean") * tau**2
    torch.testing.assert_close(logit_kd(s.logits, t.logits, tau), kl)
    torch.testing.assert_close(logit_kd(s.logits, t.logits, tau, t_squared=False), kl / tau**2)
    soft_ce = -(p_t * log_s).sum(-1).mean() * tau**2
    torch.testing.assert_close(logit_kd(s.logits, t.logits, tau, form="soft_ce"), soft_ce)
    labels = torch.tensor([1, 0])
    torch.testing.assert_close(hard_label_loss(s.logits, labels), F.cross_entropy(s.logits, labels))
    z_s, z_t, y = torch.randn(B, 1), torch.randn(B, 1), torch.tensor([0.3, 4.2])  # regression head (STS-B)
    torch.testing.assert_close(hard_label_loss(z_s, y), F.mse_loss(z_s.squeeze(-1), y))
    torch.testing.assert_close(logit_kd(z_s, z_t, tau), F.mse_loss(z_s, z_t))


@pytest.mark.parametrize("cls", [BertForMaskedLM, GPT2LMHeadModel])
def test_lm_terms_equal_manual_and_hf_loss(cls):
    s, t, batch = _pair(cls)
    m, tau = batch["attention_mask"].bool(), 2.0
    labels = batch["input_ids"].masked_fill(~m, -100)
    if cls is BertForMaskedLM:
        labels[0, ::2] = -100  # MLM: only some positions are predicted
    terms = _terms(s, t, {**batch, "labels": labels}, {"lm": 1, "logit_kd": 1}, temperature=tau)
    student = _model(cls, 1)
    kroneckerize(student, SPEC)
    hf_loss = student(**batch, labels=labels).loss  # transformers' own MLM / shifted CLM loss
    torch.testing.assert_close(terms["lm"], hf_loss.detach())
    kd = F.kl_div((s.logits[m] / tau).log_softmax(-1), (t.logits[m] / tau).softmax(-1), reduction="batchmean")
    torch.testing.assert_close(terms["logit_kd"], (kd * tau**2).detach())


def test_total_is_the_weighted_sum_and_zero_weights_are_skipped():
    s, t, batch = _pair(BertForSequenceClassification)
    batch = {**batch, "labels": torch.tensor([1, 0])}
    weights = {"emb_mse": 0.5, "hid_mse": 2.0, "ce": 1.0, "att_kl": 0.0}
    total, terms = ilkd_loss(s, t, batch, weights)
    assert set(terms) == {"emb_mse", "hid_mse", "ce"}
    torch.testing.assert_close(total.detach(), sum(weights[k] * v for k, v in terms.items()))
    assert total.requires_grad and not any(v.requires_grad for v in terms.values())
    # a zero-weight term is never evaluated: `ce` without labels would raise
    assert "ce" not in ilkd_loss(s, t, _batch(), {"emb_mse": 1, "ce": 0})[1]
    # student-only terms need no teacher
    assert set(ilkd_loss(s, None, batch, {"ce": 1})[1]) == {"ce"}


# --------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize("cls", [BertForMaskedLM, GPT2LMHeadModel])
def test_padded_tokens_do_not_change_masked_losses(cls):
    teacher, student = _model(cls, 0), _model(cls, 1)
    kroneckerize(student, SPEC)
    batch, other = _batch(), _batch()
    other["input_ids"][1, PAD_FROM:] = torch.arange(7, 7 + T - PAD_FROM)  # different tokens under the padding
    feats = []
    for b in (batch, other):
        with torch.no_grad():
            feats.append((capture(student, b), capture(teacher, b)))
    (s1, t1), (s2, t2) = feats
    assert not torch.allclose(s1.scores[1], s2.scores[1])  # the change does reach the padded positions ...
    assert not torch.allclose(s1.hidden[1], s2.hidden[1])
    terms1, terms2 = _terms(s1, t1, batch, ALL_DISTILL), _terms(s2, t2, other, ALL_DISTILL)
    for name in ALL_DISTILL:  # ... but no masked term sees it
        torch.testing.assert_close(terms1[name], terms2[name], msg=name)


# --------------------------------------------------------------------------------------------- layer maps
def test_layer_maps():
    assert resolve_layer_map("identity", 3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert resolve_layer_map("uniform", 4, 12) == [(0, 2), (1, 5), (2, 8), (3, 11)]  # TinyBERT 4 ← 12
    assert resolve_layer_map("uniform", 2, 2) == [(0, 0), (1, 1)]
    assert resolve_layer_map([0, 3], 2, 4) == [(0, 0), (1, 3)]
    for bad in [("identity", 2, 4), ("uniform", 3, 4), ([0], 2, 4), ([0, 4], 2, 4), ("every_other", 2, 4)]:
        with pytest.raises(KronbenchError, match="layer_map"):
            resolve_layer_map(*bad)


def test_uniform_map_picks_teacher_layers():
    s, t, batch = _pair(BertForSequenceClassification, num_hidden_layers=4)
    m = batch["attention_mask"].bool()
    terms = _terms(s, t, batch, {"hid_mse": 1, "att_mse": 1}, layer_map="uniform")
    hid = F.mse_loss(s.hidden[0][m], t.hidden[1][m]) + F.mse_loss(s.hidden[1][m], t.hidden[3][m])
    torch.testing.assert_close(terms["hid_mse"], hid.detach())
    torch.testing.assert_close(terms["att_mse"], _manual_attention_terms(s, t, [(0, 1), (1, 3)])[0].detach())
    with pytest.raises(KronbenchError, match="identity"):
        ilkd_loss(s, t, batch, {"hid_mse": 1})


# --------------------------------------------------------------------------------------------- training, errors
@pytest.mark.parametrize("cls,preset,normalize", [(BertForSequenceClassification, "kroneckerbert", False),
                                                  (GPT2LMHeadModel, "kngpt2", True)])
def test_ilkd_training_reduces_the_loss(cls, preset, normalize):
    """30 Adam steps of a randomly initialised compressed student on one batch, full preset sum.

    An NKP student of a tiny random teacher starts with ILKD terms ~1e-4, so a random one (seed 1) is used. The
    hard labels are the teacher's own predictions, so the task term pulls the same way as the KD terms.
    """
    teacher, student = _model(cls, 0), _model(cls, 1)
    kroneckerize(student, SPEC)
    batch = _batch()
    with torch.no_grad():
        t = capture(teacher, batch)
    labels = t.logits.argmax(-1)  # (B,) classes, or (B, T) next tokens for the CLM loss (shifted inside it)
    if preset == "kngpt2":
        labels = torch.cat([torch.full((B, 1), -100), labels[:, :-1]], 1).masked_fill(~t.token_mask, -100)
    batch["labels"] = labels
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        total, _ = ilkd_loss(capture(student, batch), t, batch, PRESETS[preset], normalize=normalize)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(total.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_nan_names_the_term():
    s, t, batch = _pair(BertForSequenceClassification)
    bad = dataclasses.replace(s, hidden=[s.hidden[0] * math.nan, s.hidden[1]])
    with pytest.raises(NonFiniteLossError, match="'hid_mse' is nan") as err:
        ilkd_loss(bad, t, batch, {"emb_mse": 1, "hid_mse": 1})
    assert err.value.term == "hid_mse"


def test_bad_configs_raise():
    s, t, batch = _pair(BertForSequenceClassification)
    with pytest.raises(KronbenchError, match="unknown loss terms"):
        ilkd_loss(s, t, batch, {"hidden": 1})
    with pytest.raises(KronbenchError, match="need teacher"):
        ilkd_loss(s, None, batch, {"hid_mse": 1})
    with pytest.raises(KronbenchError, match="weight 0"):
        ilkd_loss(s, t, batch, {"hid_mse": 0})
    with pytest.raises(KronbenchError, match="no logits"):
        ilkd_loss(dataclasses.replace(s, logits=None), t, batch, {"logit_kd": 1})
    with pytest.raises(KronbenchError, match="'lm'"):
        hard_label_loss(torch.randn(B, T, 96), torch.zeros(B, T, dtype=torch.long))
    with pytest.raises(KronbenchError, match="soft_ce"):
        logit_kd(s.logits, t.logits, form="mse")


def test_bf16_teacher_targets_are_close_and_bad_precision_is_named():
    from kronbench.distill.objectives import ilkd

    s_model = _model(BertForSequenceClassification, 1)
    kroneckerize(s_model, SPEC)
    teacher = _model(BertForSequenceClassification, 0)
    batch = {**_batch(), "labels": torch.tensor([0, 1])}
    weights = {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0}
    fp32 = ilkd(teacher, "pair_classification", weights, normalize=True)(s_model, batch, 0)[1]
    bf16 = ilkd(teacher, "pair_classification", weights, normalize=True, teacher_precision="bf16")(s_model, batch, 0)[1]
    for name in weights:
        torch.testing.assert_close(bf16[name], fp32[name], rtol=0.05, atol=1e-3)
    with pytest.raises(KronbenchError, match="loss.teacher_precision: 'fp16'"):
        ilkd(teacher, "pair_classification", weights, teacher_precision="fp16")


def test_ce_skips_unlabelled_transfer_rows():
    logits = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([1, -100, 0, -100])
    torch.testing.assert_close(hard_label_loss(logits, labels), F.cross_entropy(logits[[0, 2]], labels[[0, 2]]))
    none = hard_label_loss(logits, torch.full((4,), -100))
    none.backward()
    assert none.item() == 0.0 and logits.grad.abs().sum() == 0
