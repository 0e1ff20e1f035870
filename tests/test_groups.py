"""Every operation in its own group: generators computed, the discrete-log relabelling, the pairs inside it."""

import pytest
import torch

from interp.config import RunConfig
from interp.errors import ConfigError, ProbeError
from interp.groups import group_of, primitive_root
from interp.tasks import Task


@pytest.mark.parametrize("p, g", [(53, 2), (113, 3), (97, 5), (23, 5), (7, 3)])
def test_the_smallest_primitive_root_is_computed(p, g):
    assert primitive_root(p) == g
    assert sorted(pow(g, i, p) for i in range(p - 1)) == list(range(1, p))


@pytest.mark.parametrize("op", ["mul", "div"])
def test_multiplication_and_division_become_addition_and_subtraction_by_discrete_log(op):
    p = 23
    task = Task(op=op, p=p, frac_train=0.5)
    G = task.group
    n = G.order
    assert n == p - 1 and G.generator == 5 and G.sign == (1 if op == "mul" else -1)
    labels, pairs = task.labels(), task.pairs()
    idx = task.circuit_idx
    assert idx.shape == (n * n,)
    dlog = {x: i for i, x in enumerate(G.elements)}
    for pos in range(0, n * n, 37):
        i, j = divmod(pos, n)
        a, b = pairs[idx[pos]].tolist()
        assert (dlog[a], dlog[b]) == (i, j)
        assert dlog[int(labels[idx[pos]])] == (i + G.sign * j) % n
    # the pairs with a zero input are exactly the ones outside the group
    outside = sorted(set(range(task.n_pairs)) - set(idx.tolist()))
    assert all(0 in pairs[k].tolist() for k in outside)
    assert len(outside) == (2 * p - 1 if op == "mul" else p - 1)


def test_division_has_no_zero_divisor_and_labels_invert_multiplication():
    task = Task(op="div", p=7, frac_train=0.5)
    assert task.n_pairs == 42 and (task.pairs()[:, 1] != 0).all()
    a, b = task.pairs().unbind(1)
    assert torch.equal((task.labels() * b) % 7, a)


def test_additive_tasks_use_every_pair_in_pair_order():
    for op, sign in (("add", 1), ("sub", -1)):
        task = Task(op=op, p=11, frac_train=0.5)
        assert task.group.order == 11 and task.group.sign == sign and task.group.generator is None
        assert torch.equal(task.circuit_idx, torch.arange(121))


def test_quadratic_tasks_have_no_group_and_say_so():
    task = Task(op="a2+ab+b2", p=7, frac_train=0.5)
    assert task.group is None
    with pytest.raises(ProbeError, match=r"restricted_loss: not applicable to task 'a2\+ab\+b2'"):
        task.require_group("restricted_loss")


def test_the_old_quadratic_name_is_refused_with_its_new_name():
    with pytest.raises(ConfigError, match=r"'x2y2' was renamed 'a2\+b2' \(it computes \(a\^2 \+ b\^2\) mod p\)"):
        RunConfig(op="x2y2", p=7)
    with pytest.raises(ConfigError, match="renamed"):
        Task(op="x2y2", p=7)


def test_circuit_split_is_the_split_inside_the_group():
    task = Task(op="mul", p=11, frac_train=0.5, seed=3)
    pos = task.circuit_split("train")
    assert set(task.circuit_idx[pos].tolist()) == set(task.train_idx.tolist()) & set(task.circuit_idx.tolist())


def test_group_of_is_none_for_an_unknown_op():
    assert group_of("a2+b2", 7) is None
