"""The P x K samplers. PKSampler (data.sampler: identity): batch layout, coverage, rare identities,
determinism, shards, resuming. ImageGroupSampler (image, the released one): groups per identity per
pass, the pass rule, slots per domain following image counts; the shared interface for both."""
import math
from collections import Counter

import numpy as np
import pytest

from bau.core.config import Config
from bau.core.errors import BauError
from bau.data.samplers import SAMPLERS, ImageGroupSampler, PKSampler, batches_of_one_pass, build_sampler, image_groups

pytestmark = pytest.mark.unit


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


# -- data.sampler: image (the released sampler) -------------------------------------------------
def index_by_pid_of(pids):
    out = {}
    for i, pid in enumerate(pids):
        out.setdefault(pid, []).append(i)
    return out


@pytest.mark.parametrize("k", [2, 3, 4])
def test_image_groups_per_identity(k):
    index_by_pid = index_by_pid_of(PIDS)
    groups = image_groups(index_by_pid, k, np.random.default_rng(k))
    assert sorted(groups) == sorted(index_by_pid)
    for pid, own in index_by_pid.items():
        n = len(own)
        assert len(groups[pid]) == max(1, n // k), f"pid {pid} with {n} images"
        used = [i for g in groups[pid] for i in g]
        assert all(len(g) == k for g in groups[pid]) and set(used) <= set(own)
        if n >= k:
            # a shuffled list cut into groups: no image twice in the pass, the remainder dropped
            assert len(set(used)) == len(used) == k * (n // k)


def test_rare_identity_is_drawn_with_replacement():
    # one image short of K: one group of K draws from its 3 images, so over many passes
    # groups with a repeated image and groups with all 3 images both occur, never another image
    index_by_pid = {7: [10, 11, 12], 8: list(range(20, 28))}
    rng = np.random.default_rng(0)
    kinds = Counter()
    for _ in range(200):
        (group,) = image_groups(index_by_pid, 4, rng)[7]
        assert len(group) == 4 and set(group) <= {10, 11, 12}
        kinds[len(set(group))] += 1
    # P(all 3 distinct in 4 draws) = 36/81 = 0.44; P(a single image 4 times) = 3/81 = 0.037
    assert 0.34 < kinds[3] / 200 < 0.55 and 1 <= kinds[1] <= 20


def test_one_pass_takes_p_distinct_ids_until_fewer_than_p_are_left():
    index_by_pid = index_by_pid_of(PIDS)
    k, p = 2, 5
    rng = np.random.default_rng(3)
    groups = image_groups(index_by_pid, k, rng)
    owner = {i: pid for pid, own in index_by_pid.items() for i in own}
    used = Counter()
    position = Counter()
    for batch in batches_of_one_pass(groups, p, rng):
        assert len(batch) == p * k
        batch_pids = []
        for g in range(p):
            group = batch[g * k:(g + 1) * k]
            pid = owner[group[0]]
            assert {owner[i] for i in group} == {pid}
            # each identity gives its groups in order
            assert group == groups[pid][position[pid]]
            position[pid] += 1
            batch_pids.append(pid)
        assert len(set(batch_pids)) == p, "P distinct identities per batch"
        used.update(batch_pids)
    left = [pid for pid in groups if used[pid] < len(groups[pid])]
    assert len(left) < p, "the pass ends only when fewer than P identities have groups left"
    assert all(used[pid] <= len(groups[pid]) for pid in groups)


def test_pass_length_distribution_matches_hand_count():
    # K=4, P=2, identities with 8, 4, 4 images -> 2, 1, 1 groups. The first batch picks 2 of 3:
    # {1, 2} (prob 1/3) exhausts both and leaves one identity -> a 1-batch pass; otherwise the
    # second batch is {0, the other} -> 2 batches. So len = 1 with prob 1/3, 2 with prob 2/3.
    pids = make_pids([8, 4, 4])
    lengths = Counter()
    sampler = ImageGroupSampler(pids, num_instances=4, num_ids=2, seed=0)
    for epoch in range(600):
        sampler.set_epoch(epoch)
        lengths[sampler.num_batches] += 1
        assert len(sampler) == sampler.num_batches * 8 == len(list(sampler))
    assert set(lengths) == {1, 2}
    assert abs(lengths[1] / 600 - 1 / 3) < 0.06


def test_image_sampler_batches_and_iters_chain_passes():
    p, k = 4, 2
    one_pass = ImageGroupSampler(PIDS, num_instances=k, num_ids=p, seed=2)
    n_pass = one_pass.num_batches
    total_groups = sum(max(1, c // k) for c in COUNTS)
    assert total_groups - (p - 1) * (max(COUNTS) // k) <= n_pass * p <= total_groups
    chained = ImageGroupSampler(PIDS, num_instances=k, num_ids=p, seed=2, num_iters=3 * n_pass + 1)
    bs = batches(chained)
    assert len(bs) == 3 * n_pass + 1
    assert bs[:n_pass] == batches(one_pass), "the first pass is the same draw"
    visits = Counter()
    for batch in bs:
        batch_pids = [PIDS[g[0]] for g in groups(batch, k)]
        assert len(set(batch_pids)) == p
        visits.update(batch_pids)
    # an identity's share of the slots follows its image count: 7-image ids get ~3.5x the 2-image ids
    per_count = {c: np.mean([visits[pid] for pid, n in enumerate(COUNTS) if n == c]) for c in (2, 7)}
    assert 2.0 < per_count[7] / per_count[2] < 4.0


def test_domain_share_follows_images_under_image_and_ids_under_identity():
    # domain A: 10 ids x 40 images; domain B: 40 ids x 2 images. Images: A 400 of 480 (0.83);
    # identities: A 10 of 50 (0.2). With K = 2 every image-group of B is one of its identities.
    pids = make_pids([40] * 10 + [2] * 40)
    domain = np.array([0 if pid < 10 else 1 for pid in pids])
    share = {}
    for kind in ("image", "identity"):
        sampler = build_sampler(kind, pids, num_instances=2, num_ids=4, seed=0)
        slots = np.concatenate([sampler.epoch_indices(e) for e in range(8)])
        share[kind] = float(np.mean(domain[slots] == 0))
    assert share["image"] == pytest.approx(400 / 480, abs=0.05)
    assert share["identity"] == pytest.approx(10 / 50, abs=0.03)


@pytest.mark.parametrize("kind", ["identity", "image"])
def test_determinism_per_seed_and_epoch(kind):
    make = lambda seed: build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=seed)  # noqa: E731
    a, b = make(7), make(7)
    assert list(a) == list(b) and list(a) == list(a)
    epoch0 = list(a)
    for s in (a, b):
        s.set_epoch(3)
    assert list(a) == list(b) != epoch0
    assert list(make(8)) != epoch0


@pytest.mark.parametrize("kind", ["identity", "image"])
@pytest.mark.parametrize("world_size", [2, 4])
def test_distributed_slices_equal_the_global_batch(kind, world_size):
    p, k = 8, 2
    single = build_sampler(kind, PIDS, num_instances=k, num_ids=p, seed=5, seeded=True)
    single.set_epoch(2)
    flat = list(single)
    shards = []
    for rank in range(world_size):
        s = build_sampler(kind, PIDS, num_instances=k, num_ids=p, seed=5, rank=rank, world_size=world_size,
                          seeded=True)
        s.set_epoch(2)
        assert s.batch_size == p // world_size * k and s.num_batches == single.num_batches
        shards.append(list(s))
    size = p // world_size * k
    rebuilt = [pair for b in range(single.num_batches) for r in range(world_size)
               for pair in shards[r][b * size:(b + 1) * size]]
    assert rebuilt == flat, "(index, seed) pairs of the shards, in rank order, are the single-process ones"


@pytest.mark.parametrize("kind", ["identity", "image"])
def test_epoch_indices_are_what_the_sampler_yields(kind):
    s = build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=1)
    s.set_epoch(4)
    assert s.epoch_indices().tolist() == list(s)
    five = s.epoch_indices(5)
    assert s.epoch == 4, "asking for another epoch leaves the sampler where it was"
    s.set_epoch(5)
    assert five.tolist() == list(s)


@pytest.mark.parametrize("kind", ["identity", "image"])
def test_state_round_trip_for_both_samplers(kind):
    s = build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=11)
    s.set_epoch(6)
    expected, state = list(s), s.state_dict()
    resumed = build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=11)
    resumed.load_state_dict(state)
    assert resumed.epoch == 6 and list(resumed) == expected


def test_sampler_option_is_validated():
    assert set(SAMPLERS) == {"identity", "image"}
    with pytest.raises(BauError, match="data.sampler"):
        build_sampler("random", PIDS)
    for kind in SAMPLERS:
        cfg = Config()
        cfg.data.sampler = kind
        cfg.validate()
    cfg = Config()
    cfg.data.sampler = "images"
    with pytest.raises(BauError, match="data.sampler"):
        cfg.validate()
    with pytest.raises(BauError, match="only 23 identities"):
        ImageGroupSampler(PIDS, num_instances=2, num_ids=24)


# -- the permutation stream's deferral rule, the image cursors, the state's seed -----------------
def test_an_identity_repeated_across_permutations_is_deferred_not_dropped():
    # 3 ids, P = 2: seed 1 draws the permutations [0 1 2] then [2 0 1], so the second group starts
    # with id 2 (end of the first permutation) and the stream's next id is 2 again: it is deferred to
    # the third group, which starts with it. Every permutation is visited completely.
    rng = np.random.default_rng(1)
    first, second = rng.permutation(3).tolist(), rng.permutation(3).tolist()
    assert (first, second) == ([0, 1, 2], [2, 0, 1])
    labels = [5, 6, 7]  # pid_list[i] is the label of the i-th identity
    sampler = PKSampler(make_pids([4, 4, 4]), num_instances=1, num_ids=2, seed=1, num_iters=3)
    sampler.pid_list = labels
    sampler.index_by_pid = {labels[i]: [i * 4 + j for j in range(4)] for i in range(3)}
    assert sampler._identity_groups(np.random.default_rng(1)) == [[5, 6], [7, 5], [7, 6]]


@pytest.mark.parametrize("seed", range(6))
def test_identity_groups_are_distinct_and_balanced_under_frequent_repeats(seed):
    # 3 ids in groups of 2: a group straddles two permutations every 3 groups, and repeats are common.
    # Deferring (not dropping) keeps every prefix of the stream balanced: visit counts differ by at
    # most 2 (a partly visited permutation, minus the deferred ids).
    sampler = PKSampler(make_pids([2, 2, 2]), num_instances=2, num_ids=2, seed=seed, num_iters=90)
    groups_ = sampler._identity_groups(np.random.default_rng(seed))
    assert len(groups_) == 90
    visits = Counter({pid: 0 for pid in range(3)})
    for group in groups_:
        assert len(group) == 2 and len(set(group)) == 2 and set(group) <= {0, 1, 2}
        visits.update(group)
        assert max(visits.values()) - min(visits.values()) <= 2
    assert sum(visits.values()) == 180


def test_image_cursors_draw_exactly_as_documented():
    # The draws of a visit, from the sampler's generator: a rare identity (n < K) takes K - n extra
    # images with replacement, then shuffles its K; a frequent one walks a permutation of its images,
    # K at a time, and reshuffles when fewer than K are left.
    from bau.data.samplers import _ImageCursors
    index_by_pid = {0: [10, 11], 1: [20, 21, 22, 23, 24], 2: [30, 31, 32, 33]}
    cursors = _ImageCursors(index_by_pid, 4, np.random.default_rng(5))
    ref = np.random.default_rng(5)

    def rare(images):
        chosen = images + [images[i] for i in ref.integers(0, len(images), size=4 - len(images))]
        return [chosen[i] for i in ref.permutation(4)]

    def walk(images):
        return [images[i] for i in ref.permutation(len(images))]

    expected = [rare(index_by_pid[0])]
    queue = walk(index_by_pid[1])
    expected.append(queue[:4])
    expected.append(walk(index_by_pid[2]))  # exactly K images: one shuffled group per visit
    expected.append(walk(index_by_pid[1])[:4])  # one image was left: reshuffled
    expected.append(rare(index_by_pid[0]))
    assert [cursors.take(pid) for pid in (0, 1, 2, 1, 0)] == expected
    assert cursors.queues[1] and len(cursors.queues[1]) == 1 and cursors.queues[2] == []


@pytest.mark.parametrize("kind", ["identity", "image"])
def test_state_restores_the_seed_too(kind):
    s = build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=11)
    s.set_epoch(2)
    expected, state = list(s), s.state_dict()
    assert state == {"epoch": 2, "seed": 11}
    other = build_sampler(kind, PIDS, num_instances=2, num_ids=4, seed=99)
    other.load_state_dict(state)
    assert (other.epoch, other.seed) == (2, 11) and list(other) == expected
    other.load_state_dict({"epoch": 3})  # an older state without a seed keeps the sampler's
    assert (other.epoch, other.seed) == (3, 11)
    with pytest.raises(BauError, match=r"^sampler state: expected a mapping with an integer 'epoch'"):
        other.load_state_dict({"epoch": "three"})


def test_epoch_indices_are_int64_even_for_an_empty_epoch():
    class NoBatches(PKSampler):
        def _draw_batches(self, rng):
            return []

    s = NoBatches(PIDS, num_instances=2, num_ids=4)
    empty = s.epoch_indices()
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert np.arange(5)[empty].shape == (0,), "usable as an index, e.g. domains[sampler.epoch_indices()]"
    assert PKSampler(PIDS, num_instances=2, num_ids=4).epoch_indices().dtype == np.int64


@pytest.mark.fidelity
def test_defaults_are_the_papers_64_identities_of_4_images():
    # Section 4.2: 256 images per batch, 64 identities with 4 instances each; the base seed is 0.
    pids = make_pids([2] * 70)
    for kind in ("identity", "image"):
        s = build_sampler(kind, pids)
        assert (s.num_ids, s.num_instances, s.seed, s.batch_size) == (64, 4, 0, 256)
        assert len(list(s)) == len(s) == s.num_batches * 256


def test_one_image_and_one_identity_per_batch_are_allowed_zero_is_an_error():
    pids = make_pids([3, 3, 3])
    s = PKSampler(pids, num_instances=1, num_ids=1, seed=0)
    flat = list(s)
    assert s.batch_size == 1 and len(flat) == 3 and sorted(pids[i] for i in flat) == [0, 1, 2]
    with pytest.raises(BauError, match=r"^data\.num_instances: expected at least 1 image per identity, got 0$"):
        PKSampler(pids, num_instances=0, num_ids=1)
    with pytest.raises(BauError, match=r"^data\.num_ids: expected at least 1 identity per batch, got 0$"):
        PKSampler(pids, num_instances=1, num_ids=0)
    with pytest.raises(BauError, match=r"^data\.sampler: expected one of identity, image, got 'random'$"):
        build_sampler("random", pids)


def test_global_batches_are_drawn_once_per_seed_and_epoch():
    draws = []

    class Counting(PKSampler):
        def _draw_batches(self, rng):
            draws.append((self.seed, self.epoch))
            return super()._draw_batches(rng)

    s = Counting(PIDS, num_instances=2, num_ids=4, seed=3)
    first = s.global_batches()
    assert s.global_batches() is first and len(s) == len(list(s)) and s.epoch_indices().size == len(s)
    assert draws == [(3, 0)]
    s.set_epoch(1)
    s.global_batches()
    s.load_state_dict({"epoch": 1, "seed": 4})
    s.global_batches()
    assert draws == [(3, 0), (3, 1), (4, 1)]


def test_image_sampler_stops_after_num_iters_batches_even_one():
    for n in (1, 2):
        s = ImageGroupSampler(PIDS, num_instances=2, num_ids=4, seed=0, num_iters=n)
        assert s.num_batches == n and len(s.global_batches()) == n and len(list(s)) == n * 8


def test_sample_seed_is_63_bits_of_the_seed_sequence():
    from bau.data.samplers import sample_seed
    seen = set()
    for key in [(0, 0, 0, 0), (1, 2, 3, 4), (7, 0, 5, 255), (123456, 9, 1, 0)]:
        high, low = (int(w) for w in np.random.SeedSequence(list(key)).generate_state(2))
        expected = ((high << 32) + low) % 2 ** 63  # the two 32-bit words, high one first, top bit dropped
        assert sample_seed(*key) == expected, key
        seen.add(expected)
    assert len(seen) == 4
    assert sample_seed(0, 0, 0, 0) == 3527577169254209511
