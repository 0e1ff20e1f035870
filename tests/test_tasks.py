import pytest
import torch

from interp.config import preset
from interp.errors import ConfigError
from interp.tasks import Task


@pytest.mark.parametrize("op, fn", [("add", lambda a, b: a + b), ("sub", lambda a, b: a - b),
                                    ("mul", lambda a, b: a * b), ("a2+b2", lambda a, b: a * a + b * b),
                                    ("a2+ab+b2", lambda a, b: a * a + a * b + b * b)])
def test_labels_follow_pair_order(op, fn):
    task = Task(op=op, p=7, frac_train=0.5)
    tokens, labels = task.tokens(), task.labels()
    for idx in range(task.n_pairs):
        a, b = divmod(idx, task.p)
        assert tokens[idx].tolist() == [a, b, task.p]
        assert labels[idx].item() == fn(a, b) % task.p


def test_split_is_a_seeded_partition():
    task = Task.from_config(preset("nanda2023"))
    train, test = task.train_idx, task.test_idx
    assert len(train) == 3830 and len(test) == 8939
    assert torch.equal(torch.cat([train, test]).sort().values, torch.arange(113 * 113))
    again = Task.from_config(preset("nanda2023"))
    assert torch.equal(again.train_idx, train)  # deterministic
    other = Task(p=113, frac_train=0.3, seed=1)
    assert not torch.equal(other.train_idx, train)  # the seed matters


def test_explicit_split_overrides_the_seed():
    task = Task(p=5, frac_train=0.4, explicit_train=tuple(range(10)))
    assert task.train_idx.tolist() == list(range(10))
    assert task.test_idx.tolist() == list(range(10, 25))
    with pytest.raises(ConfigError, match="explicit_train"):
        Task(p=5, frac_train=0.4, explicit_train=(0, 0, 1, 2, 3, 4, 5, 6, 7, 8))


def test_bad_task_and_split_names():
    with pytest.raises(ConfigError, match="prime"):
        Task(p=9)
    with pytest.raises(ConfigError, match="split must be"):
        Task(p=5).split_idx("val")


def test_custom_training_pairs_of_any_count_are_kept_exactly():
    # int(k / n * n) is k - 1 for some k (49 pairs: k = 1, 2, 4, ...); the task must still hold exactly k pairs
    for k in range(1, 49):
        task = Task.custom("add", 7, train_idx=range(k))
        assert task.train_idx.tolist() == list(range(k)) and len(task.test_idx) == 49 - k
