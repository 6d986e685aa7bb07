"""PKSampler: P x K batch layout, coverage, rare identities, determinism, shards, resuming."""
import math
from collections import Counter

import pytest

from bau.data.samplers import PKSampler
from bau.errors import BauError


def make_pids(counts):
    """pid ``i`` gets ``counts[i]`` consecutive dataset indices."""
    return [pid for pid, n in enumerate(counts) for _ in range(n)]


# 23 identities with 1..7 images: rare ones (< K) and frequent ones, not a multiple of P.
COUNTS = [1 + (i * 5) % 7 for i in range(23)]
PIDS = make_pids(COUNTS)


def batches(sampler):
    flat = list(sampler)
    size = sampler.batch_size
    assert len(flat) == len(sampler) and len(flat) % size == 0
    return [flat[i:i + size] for i in range(0, len(flat), size)]


def groups(batch, k):
    return [batch[i:i + k] for i in range(0, len(batch), k)]


def test_batch_layout_is_p_ids_times_k_consecutive():
    p, k = 5, 3
    sampler = PKSampler(PIDS, num_instances=k, num_ids=p, seed=0)
    assert sampler.batch_size == p * k
    bs = batches(sampler)
    assert len(bs) == math.ceil(23 / p)
    for batch in bs:
        assert len(batch) == p * k
        batch_pids = []
        for group in groups(batch, k):
            pids = {PIDS[i] for i in group}
            assert len(pids) == 1, "K consecutive indices must share one identity"
            batch_pids.append(pids.pop())
        assert len(set(batch_pids)) == p, "P distinct identities per batch"


@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_every_identity_is_visited_each_epoch(epoch):
    sampler = PKSampler(PIDS, num_instances=4, num_ids=6, seed=3)
    sampler.set_epoch(epoch)
    visits = Counter(PIDS[i] for i in list(sampler)[::4])
    assert set(visits) == set(range(23))
    # one permutation + a top-up of the last group: ceil(23/6)=4 batches = 24 visits, one id twice
    assert sum(visits.values()) == 24
    assert max(visits.values()) == 2 and sum(v == 2 for v in visits.values()) == 1


def test_rare_identities_use_all_their_images_with_replacement():
    pids = make_pids([1, 2, 4, 9, 3, 5])  # K=4: ids 0, 1, 4 have fewer images than K
    sampler = PKSampler(pids, num_instances=4, num_ids=3, seed=0)
    index_by_pid = {}
    for i, pid in enumerate(pids):
        index_by_pid.setdefault(pid, []).append(i)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        for batch in batches(sampler):
            for group in groups(batch, 4):
                pid = pids[group[0]]
                own = index_by_pid[pid]
                assert len(group) == 4 and set(group) <= set(own)
                if len(own) < 4:
                    assert set(group) == set(own), "a rare identity shows every one of its images"
                else:
                    assert len(set(group)) == 4, "a frequent identity is sampled without replacement"


def test_repeated_visits_walk_through_an_identitys_images():
    # 4 ids, P=4: every batch holds every id, so 2 batches visit each id twice and an id with
    # 8 images shows all 8 of them once.
    pids = make_pids([8, 8, 8, 8])
    sampler = PKSampler(pids, num_instances=4, num_ids=4, seed=1, num_iters=2)
    seen = Counter(list(sampler))
    assert sorted(seen) == list(range(32)) and set(seen.values()) == {1}


def test_num_iters_fixes_batches_and_cycles_identities():
    sampler = PKSampler(PIDS, num_instances=2, num_ids=4, seed=0, num_iters=20)
    bs = batches(sampler)
    assert len(bs) == 20 and len(sampler) == 20 * 8
    visits = Counter()
    for batch in bs:
        batch_pids = [PIDS[g[0]] for g in groups(batch, 2)]
        assert len(set(batch_pids)) == 4
        visits.update(batch_pids)
    # 80 visits over 23 ids: every id 3 or 4 times (three full permutations plus part of a fourth)
    assert set(visits) == set(range(23)) and min(visits.values()) >= 3 and max(visits.values()) <= 4


def test_same_seed_and_epoch_reproduce_and_epochs_differ():
    a = PKSampler(PIDS, num_instances=4, num_ids=5, seed=7)
    b = PKSampler(PIDS, num_instances=4, num_ids=5, seed=7)
    assert list(a) == list(b)
    assert list(a) == list(a), "iterating twice in one epoch gives the same order"
    epoch0 = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(a) != epoch0
    other_seed = PKSampler(PIDS, num_instances=4, num_ids=5, seed=8)
    assert list(other_seed) != epoch0


@pytest.mark.parametrize("world_size", [2, 4])
def test_shards_partition_the_global_batch(world_size):
    p, k = 8, 2
    single = PKSampler(PIDS, num_instances=k, num_ids=p, seed=5, num_iters=6)
    single.set_epoch(3)
    shards = []
    for rank in range(world_size):
        s = PKSampler(PIDS, num_instances=k, num_ids=p, seed=5, num_iters=6, rank=rank, world_size=world_size)
        s.set_epoch(3)
        assert s.batch_size == p // world_size * k
        assert len(s) == 6 * s.batch_size
        shards.append(batches(s))
    for b, global_batch in enumerate(batches(single)):
        parts = [shards[r][b] for r in range(world_size)]
        assert sum(parts, []) == global_batch, "rank shards, in rank order, are the single-process batch"
        part_pids = [{PIDS[i] for i in part} for part in parts]
        for r in range(world_size):
            for q in range(r + 1, world_size):
                assert not part_pids[r] & part_pids[q] and not set(parts[r]) & set(parts[q])


def test_bad_settings_are_one_line_errors():
    with pytest.raises(BauError, match="divisible"):
        PKSampler(PIDS, num_instances=4, num_ids=6, world_size=4)
    with pytest.raises(BauError, match="only 23 identities"):
        PKSampler(PIDS, num_instances=4, num_ids=24)
    with pytest.raises(BauError, match="rank"):
        PKSampler(PIDS, num_instances=4, num_ids=4, rank=2, world_size=2)
    with pytest.raises(BauError, match="iters_per_epoch"):
        PKSampler(PIDS, num_instances=4, num_ids=4, num_iters=-1)


def test_state_round_trip_resumes_the_same_batches():
    s = PKSampler(PIDS, num_instances=4, num_ids=5, seed=11)
    s.set_epoch(6)
    expected = list(s)
    state = s.state_dict()
    resumed = PKSampler(PIDS, num_instances=4, num_ids=5, seed=11)
    assert list(resumed) != expected  # a fresh sampler is at epoch 0
    resumed.load_state_dict(state)
    assert resumed.epoch == 6 and list(resumed) == expected
    with pytest.raises(BauError, match="epoch"):
        resumed.load_state_dict({"seed": 1})
