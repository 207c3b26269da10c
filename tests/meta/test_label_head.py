"""The label-name head: rows from label names by hand, and the meta-gradient's pull-back to the generator."""

from __future__ import annotations

import torch

from drml_ray.meta.label_head import LabelNameHead, type_name

LABELS = ["O", "B-x", "I-x", "B-y", "I-y"]


def generator() -> LabelNameHead:
    g = LabelNameHead(hidden=2)
    with torch.no_grad():
        g.scale.copy_(torch.tensor([2.0, 3.0]))
        g.offset.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        g.outside.copy_(torch.tensor([5.0, 5.0]))
        g.bias.copy_(torch.tensor([1.0, 0.5, -0.5]))
    return g


def test_rows_by_hand():
    e = {"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([0.0, 1.0])}
    rows, bias = generator()(LABELS, e)
    # O: w_O; B-x: 2 (1, 0) + (0, 1); I-x: 3 (1, 0) + (1, 0); B-y: 2 (0, 1) + (0, 1); I-y: 3 (0, 1) + (1, 0)
    assert rows.tolist() == [[5, 5], [2, 1], [4, 0], [0, 3], [1, 3]]
    assert bias.tolist() == [1.0, 0.5, -0.5, 0.5, -0.5]


def test_pull_back_is_the_chain_rule():
    e = {"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([0.0, 1.0])}
    g = generator()
    rows, bias = g(LABELS, e)
    d_rows = torch.tensor([[1.0, 2.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    d_bias = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    grads = dict(zip([n for n, _ in g.named_parameters()],
                     torch.autograd.grad([rows, bias], list(g.parameters()), grad_outputs=[d_rows, d_bias]),
                     strict=True))  # fmt: skip
    # d s_B = dW[B-x] . e_x + dW[B-y] . e_y = 1 + 1; d s_I = dW[I-x] . e_x + dW[I-y] . e_y = 0 + 1
    assert grads["scale"].tolist() == [2.0, 1.0]
    # d v_B = dW[B-x] + dW[B-y]; d v_I = dW[I-x] + dW[I-y]; d w_O = dW[O]
    assert grads["offset"].tolist() == [[1.0, 1.0], [1.0, 2.0]]
    assert grads["outside"].tolist() == [1.0, 2.0]
    # d c_O = 1; d c_B = 2 + 4; d c_I = 3 + 5
    assert grads["bias"].tolist() == [1.0, 6.0, 8.0]


def test_type_names():
    assert [type_name(t) for t in ("PER", "misc", "programlang", "writer")] == [
        "person", "miscellaneous", "programming language", "writer",
    ]  # fmt: skip
