"""Identity-balanced batch samplers: every mini-batch holds P identities with K images each.

Section 4.2: "For each iteration, we sample 256 images, consisting of 64 identities with 4
instances for each identity" (P = ``num_ids`` = 64, K = ``num_instances`` = 4). The batch-hard
triplet loss and the alignment loss need positives inside the batch, hence K >= 2 images per
identity, laid out consecutively::

    [id_a, id_a, id_a, id_a, id_b, id_b, id_b, id_b, ...]   (P*K indices per batch)

Two ways to fill the batches (``data.sampler``):

- ``identity`` (``PKSampler``): one epoch visits every identity at least once. The identities are
  drawn from a stream of random permutations, P distinct ones per batch, so the last incomplete
  group of a permutation is topped up with identities from the next permutation. Identities with
  fewer than K images use all of them and repeat some; identities with more images walk through a
  shuffled list of their images, so repeated visits see different images. Every identity gets the
  same number of batch slots, so a source's share of the batches follows its IDENTITY count.
- ``image`` (``ImageGroupSampler``, the authors' released sampler): in each pass, an identity with
  n images contributes ``max(1, n // K)`` groups of K images. A frequent identity's images are
  shuffled and cut into groups (the remainder dropped); a rare one (n < K) gives one group of K
  draws with replacement. Batches take P distinct identities at a time among those with groups
  left, each giving its next group; the pass ends when fewer than P identities have groups left.
  A source's share of the batches then follows its IMAGE count.

Both share everything else: the order depends only on ``seed + epoch`` (``set_epoch``, as
``DistributedSampler``), so a run resumed at an epoch boundary sees the same batches; with
``world_size`` > 1 every rank draws the same GLOBAL batch and keeps its own contiguous slice of
``P / world_size`` identities; ``seeded=True`` yields ``(index, seed)`` pairs whose augmentation
seed depends only on the sample's place in the global batches (``sample_seed``); and
``epoch_indices`` lists an epoch's dataset indices without reading any image (e.g. to report
each source domain's share of an epoch).
"""
from __future__ import annotations

import math
from collections import deque
from typing import Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from torch.utils.data import Sampler

from bau.core.config import SAMPLERS as SAMPLER_CHOICES
from bau.core.errors import BauError


def sample_seed(seed: int, epoch: int, batch: int, position: int) -> int:
    """A 63-bit seed for one sample's augmentations, from its place in the epoch's global batches."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(batch), int(position)]).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF)


class IdentityBatchSampler(Sampler[int]):
    """What the P x K samplers share; a subclass says how an epoch's global batches are drawn
    (``_draw_batches``) and how many there are (``num_batches``).

    Args:
        pids: the identity label of every dataset item (``pids[i]`` is item ``i``'s id).
        num_instances: K, consecutive images per identity.
        num_ids: P, identities per GLOBAL batch (all ranks together).
        seed: the base seed; epoch ``e`` uses ``seed + e``.
        num_iters: batches per epoch; 0 = the sampler's natural epoch (see the subclass).
        rank, world_size: this process's slice of each global batch (distributed training).
        seeded: yield ``(index, augmentation seed)`` pairs instead of plain indices.

    ``len(sampler)`` is the number of indices this rank yields per epoch
    (``num_batches * batch_size``).
    """

    def __init__(self, pids: Sequence[int], num_instances: int = 4, num_ids: int = 64, seed: int = 0,
                 num_iters: int = 0, rank: int = 0, world_size: int = 1, seeded: bool = False):
        if num_instances < 1:
            raise BauError(f"data.num_instances: expected at least 1 image per identity, got {num_instances}")
        if num_ids < 1:
            raise BauError(f"data.num_ids: expected at least 1 identity per batch, got {num_ids}")
        if num_iters < 0:
            raise BauError(f"train.iters_per_epoch: expected 0 (one pass over the data) or a positive "
                           f"number of batches, got {num_iters}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise BauError(f"distributed sampler: expected 0 <= rank < world_size, got rank={rank}, "
                           f"world_size={world_size}")
        if num_ids % world_size != 0:
            raise BauError(f"data.num_ids={num_ids}: must be divisible by the number of processes "
                           f"({world_size}) so every rank gets the same number of identities")
        index_by_pid: Dict[int, List[int]] = {}
        for index, pid in enumerate(pids):
            index_by_pid.setdefault(int(pid), []).append(index)
        if len(index_by_pid) < num_ids:
            raise BauError(f"data.num_ids={num_ids}: the training set has only {len(index_by_pid)} identities; "
                           f"expected at least one batch worth of distinct identities (lower data.num_ids)")
        self.pid_list: List[int] = sorted(index_by_pid)
        self.index_by_pid = index_by_pid
        self.num_instances = num_instances
        self.num_ids = num_ids
        self.seed = seed
        self.num_iters = num_iters
        self.rank = rank
        self.world_size = world_size
        self.seeded = seeded
        self.epoch = 0
        self._cache: Optional[Tuple[Tuple[int, int], List[List[int]]]] = None

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def num_batches(self) -> int:
        """Global batches in the current epoch."""
        raise NotImplementedError

    @property
    def ids_per_rank(self) -> int:
        return self.num_ids // self.world_size

    @property
    def batch_size(self) -> int:
        """Indices per batch on this rank: ``(P / world_size) * K``."""
        return self.ids_per_rank * self.num_instances

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    # -- epochs and resuming -------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's draws (``seed + epoch``); call before iterating each epoch."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Restore the epoch (and seed) so the next ``iter`` reproduces the saved run's batches."""
        try:
            self.epoch = int(state["epoch"])
            self.seed = int(state.get("seed", self.seed))
        except (KeyError, TypeError, ValueError):
            raise BauError(f"sampler state: expected a mapping with an integer 'epoch', got {state!r}") from None

    # -- batches -------------------------------------------------------------------------------
    def global_batches(self) -> List[List[int]]:
        """The epoch's GLOBAL batches (all ranks), each ``P*K`` indices, K consecutive per identity.

        Drawn once per ``(seed, epoch)`` and kept, so ``len``, ``iter`` and ``epoch_indices`` agree
        without drawing twice.
        """
        key = (self.seed, self.epoch)
        if self._cache is None or self._cache[0] != key:
            batches = self._draw_batches(np.random.default_rng(self.seed + self.epoch))
            self._cache = (key, batches)
        return self._cache[1]

    def epoch_indices(self, epoch: Optional[int] = None) -> np.ndarray:
        """``[num_batches * P * K]`` dataset indices of an epoch's global batches (all ranks), in order.

        Reads no image, so e.g. ``np.bincount(domains[sampler.epoch_indices()])`` is the number of
        batch slots each source domain gets in the epoch. ``epoch`` defaults to the current one;
        asking for another leaves the sampler's epoch unchanged.
        """
        current = self.epoch
        if epoch is not None:
            self.epoch = int(epoch)
        try:
            return np.asarray([i for batch in self.global_batches() for i in batch], dtype=np.int64)
        finally:
            self.epoch = current

    def __iter__(self) -> Iterator:
        start = self.rank * self.batch_size
        for b, batch in enumerate(self.global_batches()):
            if not self.seeded:
                yield from batch[start:start + self.batch_size]
                continue
            # (index, seed) pairs: the seed of a sample's augmentations depends only on (seed, epoch,
            # batch, position in the GLOBAL batch), not on the number of loader workers or ranks, so a
            # 2-process run sees exactly the images a 1-process run sees.
            for pos in range(start, start + self.batch_size):
                yield batch[pos], sample_seed(self.seed, self.epoch, b, pos)

    def _draw_batches(self, rng: np.random.Generator) -> List[List[int]]:
        raise NotImplementedError


class PKSampler(IdentityBatchSampler):
    """``data.sampler: identity``: every identity visited once per epoch, P distinct ones per batch.

    ``num_iters`` = 0 gives ``ceil(#identities / P)`` batches per epoch; a positive ``num_iters``
    keeps drawing from the stream of identity permutations.
    """

    @property
    def num_batches(self) -> int:
        """Batches per epoch: ``num_iters`` or enough to visit every identity once."""
        return self.num_iters if self.num_iters > 0 else math.ceil(len(self.pid_list) / self.num_ids)

    def _draw_batches(self, rng: np.random.Generator) -> List[List[int]]:
        id_groups = self._identity_groups(rng)
        cursors = _ImageCursors(self.index_by_pid, self.num_instances, rng)
        return [[index for pid in group for index in cursors.take(pid)] for group in id_groups]

    def _identity_groups(self, rng: np.random.Generator) -> List[List[int]]:
        """``num_batches`` groups of P distinct identities drawn from a stream of permutations.

        An identity that is already in the group being filled (possible where one permutation
        ends and the next begins) is deferred to the next group instead of being dropped, so each
        permutation is still visited completely.
        """
        stream: Deque[int] = deque()
        deferred: List[int] = []
        groups: List[List[int]] = []
        for _ in range(self.num_batches):
            group: List[int] = []
            members = set()
            pending = deferred
            deferred = []
            while len(group) < self.num_ids:
                if pending:
                    pid = pending.pop(0)
                else:
                    if not stream:
                        stream.extend(self.pid_list[i] for i in rng.permutation(len(self.pid_list)))
                    pid = stream.popleft()
                if pid in members:
                    deferred.append(pid)
                    continue
                group.append(pid)
                members.add(pid)
            deferred = pending + deferred
            groups.append(group)
        return groups


class _ImageCursors:
    """Hands out K images per identity visit: all of a rare identity's images plus repeats, or the
    next K of a shuffled walk through a frequent identity's images (reshuffled when exhausted)."""

    def __init__(self, index_by_pid: Dict[int, List[int]], k: int, rng: np.random.Generator):
        self.index_by_pid = index_by_pid
        self.k = k
        self.rng = rng
        self.queues: Dict[int, List[int]] = {}

    def take(self, pid: int) -> List[int]:
        images = self.index_by_pid[pid]
        if len(images) < self.k:
            extra = self.rng.choice(len(images), size=self.k - len(images), replace=True)
            chosen = list(images) + [images[i] for i in extra]
            return [chosen[i] for i in self.rng.permutation(self.k)]
        queue = self.queues.get(pid, [])
        if len(queue) < self.k:
            queue = [images[i] for i in self.rng.permutation(len(images))]
        self.queues[pid] = queue[self.k:]
        return queue[:self.k]


class ImageGroupSampler(IdentityBatchSampler):
    """``data.sampler: image``, the authors' released sampler: batch slots in proportion to images.

    One pass (``image_groups`` + ``batches_of_one_pass``): identity ``i`` with ``n_i`` images gives
    ``max(1, n_i // K)`` groups of K images; batches take P random distinct identities among those
    with groups left; the pass ends when fewer than P identities have groups left (their groups are
    dropped). ``num_iters`` = 0: an epoch is one pass, as many batches as it yields (this varies a
    little from epoch to epoch: ``num_batches`` tells the current epoch's). A positive ``num_iters``
    chains passes until that many batches are filled.
    """

    @property
    def num_batches(self) -> int:
        """Batches in the current epoch: ``num_iters``, or what this epoch's single pass yields."""
        return self.num_iters if self.num_iters > 0 else len(self.global_batches())

    def _draw_batches(self, rng: np.random.Generator) -> List[List[int]]:
        batches: List[List[int]] = []
        while True:
            groups = image_groups(self.index_by_pid, self.num_instances, rng)
            for batch in batches_of_one_pass(groups, self.num_ids, rng):
                batches.append(batch)
                if 0 < self.num_iters <= len(batches):
                    return batches
            if self.num_iters == 0:
                return batches


def image_groups(index_by_pid: Dict[int, List[int]], k: int, rng: np.random.Generator) -> Dict[int, List[List[int]]]:
    """One pass's groups of K images per identity: ``{pid: [group, ...]}``, each group ``[k]`` indices.

    ``n >= k`` images: a random permutation cut into ``n // k`` groups, the last ``n % k`` images
    dropped (no image twice in a pass). ``n < k``: one group of ``k`` draws with replacement.
    Identities in sorted order, so the draws depend only on ``rng``.
    """
    groups: Dict[int, List[List[int]]] = {}
    for pid in sorted(index_by_pid):
        images = index_by_pid[pid]
        if len(images) < k:
            groups[pid] = [[images[i] for i in rng.integers(0, len(images), size=k)]]
            continue
        order = rng.permutation(len(images))
        groups[pid] = [[images[i] for i in order[g * k:(g + 1) * k]] for g in range(len(images) // k)]
    return groups


def batches_of_one_pass(groups: Dict[int, List[List[int]]], num_ids: int,
                        rng: np.random.Generator) -> Iterator[List[int]]:
    """Batches of ``num_ids`` groups from ``num_ids`` distinct identities, until fewer identities
    than that have groups left.

    Each batch: ``num_ids`` identities drawn uniformly without replacement among those with groups
    left, each contributing its next group (in the drawn order); an identity leaves the pool once its
    groups are used up. ``groups`` is not modified.
    """
    available = sorted(groups)
    next_group = {pid: 0 for pid in available}
    while len(available) >= num_ids:
        picks = rng.choice(len(available), size=num_ids, replace=False)
        batch: List[int] = []
        exhausted = []
        for slot in picks:
            pid = available[slot]
            batch += groups[pid][next_group[pid]]
            next_group[pid] += 1
            if next_group[pid] == len(groups[pid]):
                exhausted.append(int(slot))
        for slot in sorted(exhausted, reverse=True):  # swap-remove, highest slots first
            available[slot] = available[-1]
            available.pop()
        yield batch


SAMPLERS = {"identity": PKSampler, "image": ImageGroupSampler}
if tuple(SAMPLERS) != SAMPLER_CHOICES:
    raise RuntimeError(f"bau.data.samplers implements {tuple(SAMPLERS)}; bau.core.config lists {SAMPLER_CHOICES}")


def build_sampler(kind: str, pids: Sequence[int], **kwargs) -> IdentityBatchSampler:
    """The sampler ``data.sampler`` names (``identity`` or ``image``), with ``PKSampler``'s arguments."""
    if kind not in SAMPLERS:
        raise BauError(f"data.sampler: expected one of {', '.join(SAMPLERS)}, got {kind!r}")
    return SAMPLERS[kind](pids, **kwargs)
