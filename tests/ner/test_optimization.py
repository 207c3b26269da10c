"""drml's optimizer step against a plain Hugging Face-style loop, on a tiny model with fixed seeds."""

from __future__ import annotations

import copy

import pytest
import torch

from drml_ray.config import ModelConfig
from drml_ray.ner.batching import collate, collate_packed, pack_rows, supports_packing
from drml_ray.ner.features import IGNORE, Window
from drml_ray.ner.modeling import build_model
from drml_ray.ner.optimization import label_count, make_optimizer, token_loss_sum, train_step

LABELS = ["O", "B-PER", "I-PER"]
# Attention key biases have an exactly-zero gradient (softmax ignores a constant shift), so their
# "gradients" are float noise that Adam normalises into full-size steps: not comparable.
ZERO_GRADIENT = "attention.self.key.bias"


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        if ZERO_GRADIENT not in name:
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)


def windows(n: int = 8) -> list[Window]:
    """Windows of different lengths and different numbers of labelled positions."""
    out = []
    for i in range(n):
        length = 3 + (5 * i) % 7
        ids = [2] + [5 + (i * 3 + j) % 30 for j in range(length)] + [3]
        labels = [IGNORE] + [(i + j) % 3 if j % 2 == 0 else IGNORE for j in range(length)] + [IGNORE]
        out.append(Window(i, 0, ids, labels, list(range(1, length + 1))))
    return out


def model_and_optimizer(fused: bool = False):
    model = build_model(ModelConfig(backbone="tiny-random-bert"), LABELS, seed=0, vocab_size=40)
    model.eval()  # no dropout: the two paths must see the same function
    return model, make_optimizer(model, 1e-3, 0.01, fused=fused)


def plain_step(model, optimizer, batch):
    """The plain loop: one padded batch, the model's own mean loss, clip, step."""
    loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad()
    return loss.detach()


def assert_steps_match_the_plain_loop(data: list[Window], micro_batches: list[dict[str, torch.Tensor]]) -> None:
    """Three ``train_step`` calls on ``micro_batches`` give the plain full-batch loop's losses and weights."""
    plain_model, plain_opt = model_and_optimizer()
    drml_model = copy.deepcopy(plain_model)
    drml_opt = make_optimizer(drml_model, 1e-3, 0.01, fused=False)
    scaler = torch.amp.GradScaler(enabled=False)
    for _ in range(3):
        expected = plain_step(plain_model, plain_opt, collate(data, 0))
        loss = train_step(
            drml_model, micro_batches, optimizer=drml_opt, scaler=scaler,
            global_labels=label_count([w.labels for w in data]), max_grad_norm=1.0,
        )  # fmt: skip
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert_same_weights(plain_model, drml_model)


def test_accumulated_micro_batches_equal_the_plain_full_batch_step():
    data = windows()
    assert_steps_match_the_plain_loop(data, [collate(data[k::2], 0) for k in range(2)])  # grad_accum 2, unequal labels


def test_worker_shares_average_to_the_full_batch_gradient():
    """What DDP computes with 2 workers: the mean of the workers' gradients of their scaled losses."""
    data = windows()
    model, _ = model_and_optimizer()
    total_labels = label_count([w.labels for w in data])

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    full = collate(data, 0)
    expected = grads(model(**full).loss)
    shares = []
    for rank in range(2):
        part = collate(data[rank::2], 0)
        logits = model(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).logits
        shares.append(grads(token_loss_sum(logits, part["labels"]) * 2 / total_labels))
    for e, a, b in zip(expected, *shares, strict=True):
        torch.testing.assert_close((a + b) / 2, e, rtol=1e-4, atol=1e-6)


def test_fused_adamw_matches_the_default_implementation():
    data = windows()
    a, opt_a = model_and_optimizer(fused=False)
    b = copy.deepcopy(a)
    opt_b = make_optimizer(b, 1e-3, 0.01, fused=True)
    for _ in range(3):
        plain_step(a, opt_a, collate(data, 0))
        plain_step(b, opt_b, collate(data, 0))
    assert_same_weights(a, b)


def test_packed_rows_compute_each_window_as_if_alone():
    data = windows()
    model, _ = model_and_optimizer()
    assert supports_packing(model)
    rows = pack_rows(range(len(data)), [len(w.input_ids) for w in data], max_length=24)
    assert len(rows) < len(data)  # windows really share rows
    packed = collate_packed(data, rows, 0)
    logits = model(**{k: v for k, v in packed.items() if k != "labels"}).logits
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = len(data[i].input_ids)
            alone = model(input_ids=torch.tensor([data[i].input_ids])).logits[0]
            torch.testing.assert_close(logits[r, start : start + n], alone, rtol=1e-5, atol=1e-5)
            start += n


def test_a_packed_step_equals_the_plain_full_batch_step():
    data = windows()
    rows = pack_rows(range(len(data)), [len(w.input_ids) for w in data], max_length=24)
    assert_steps_match_the_plain_loop(data, [collate_packed(data, rows, 0)])


def test_only_bert_family_models_are_packed():
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    lora = build_model(ModelConfig(backbone="tiny-random-bert", strategy="lora"), LABELS, seed=0, vocab_size=40)
    assert supports_packing(lora)  # through the PEFT wrapper
    tiny = DistilBertConfig(vocab_size=40, dim=8, n_layers=1, n_heads=2, hidden_dim=16, num_labels=3)
    assert not supports_packing(DistilBertForTokenClassification(tiny))  # no position_ids argument


def test_an_extra_loss_term_adds_to_each_micro_batch_and_its_gradient():
    """``extra_loss`` (continual learning's EWC/distillation hook): called once per micro-batch with the
    cross-entropy's scale; here ``c * sum(classifier bias) * labelled share``, so over the step the loss grows
    by ``c * sum(bias)`` and each bias gradient by ``c`` (SGD, lr 1: the bias moves by exactly ``c`` more)."""
    data, c = windows(), 0.25
    model, _ = model_and_optimizer()
    twin = copy.deepcopy(model)
    labels = label_count([w.labels for w in data])
    pieces = [collate(data[k::2], 0) for k in range(2)]

    def term(batch, logits, scale):
        return c * model.classifier.bias.sum() * (batch["labels"] != -100).sum() * scale

    def step(m, extra):
        opt = torch.optim.SGD(m.parameters(), lr=1.0)
        return train_step(m, pieces, optimizer=opt, scaler=torch.amp.GradScaler(enabled=False), global_labels=labels,
                          extra_loss=extra)  # fmt: skip

    bias = model.classifier.bias.detach().clone()
    with_term, without = step(model, term), step(twin, None)
    torch.testing.assert_close(with_term - without, c * bias.sum(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(twin.classifier.bias - model.classifier.bias, torch.full_like(bias, c))


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [
        ("auto", "cpu", None),  # a CPU run's numbers do not change unless asked
        ("bf16", "cpu", torch.bfloat16),  # asked: honoured (it used to be dropped silently)
        ("fp16", "cpu", None),
        ("fp32", "cuda", None),
        ("fp16", "cuda", torch.float16),
        ("bf16", "cuda", torch.bfloat16),
    ],
)
def test_autocast_dtype_per_precision_and_device(precision, device, expected):
    from drml_ray.ner.train_loop import _autocast_dtype

    assert _autocast_dtype(precision, torch.device(device)) == expected
