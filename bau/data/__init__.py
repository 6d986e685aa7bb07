"""Data: the re-ID datasets, the synthetic domains, the P x K samplers, the two-view augmentations, the loaders.

What it offers (re-exported here; each module's docstring says more):

- ``base``: ``ReIDDataset``, its items and stored query/gallery splits: ``DISTRACTOR_PID``, ``Item``,
  ``ReIDDataset``.
- ``datasets``: the datasets by registry name (``full:NAME``, ``folder:PATH``): ``DATASETS``, ``build_dataset``.
- ``images``: reading and checking images; the decoded-image cache: ``DecodedImageCache``, ``check_images``,
  ``read_image``.
- ``randaugment``: RandAugment with appendix A's and the released op lists: ``PAPER_OPS``, ``RELEASED_OPS``,
  ``RandAugment``, ``paper_randaugment``, ``released_randaugment``.
- ``transforms``: test, original-view and augmented-view transforms (Sec. 3.1, appendix A): ``TwoViewTransform``,
  ``build_randaugment``, ``build_test_transform``, ``build_train_transform``, ``build_transforms``, ``denormalize``.
- ``samplers``: P x K batch samplers (``data.sampler``): ``ImageGroupSampler``, ``PKSampler``, ``build_sampler``.
- ``multisource``: the sources as one training set with domain ids: ``MultiSourceTrainSet``, ``training_set``.
- ``loader``: training and test loaders: ``build_test_loader``, ``build_train_loader``.
- ``inspect``: ``bau data inspect``: ids / images / cameras per split: ``inspect_datasets``.
- ``synthetic``: the synthetic multi-domain pedestrians (``bau synth``): ``format_stats``, ``generate``.
"""
from bau.data.base import DISTRACTOR_PID, Item, ReIDDataset
from bau.data.datasets import DATASETS, build_dataset
from bau.data.images import DecodedImageCache, check_images, read_image
from bau.data.inspect import inspect_datasets
from bau.data.loader import build_test_loader, build_train_loader
from bau.data.multisource import MultiSourceTrainSet, training_set
from bau.data.randaugment import PAPER_OPS, RELEASED_OPS, RandAugment, paper_randaugment, released_randaugment
from bau.data.samplers import ImageGroupSampler, PKSampler, build_sampler
from bau.data.synthetic import format_stats, generate
from bau.data.transforms import (
    TwoViewTransform,
    build_randaugment,
    build_test_transform,
    build_train_transform,
    build_transforms,
    denormalize,
)

__all__ = [
    "DISTRACTOR_PID", "Item", "ReIDDataset", "DATASETS", "build_dataset", "DecodedImageCache", "check_images",
    "read_image", "PAPER_OPS", "RELEASED_OPS", "RandAugment", "paper_randaugment", "released_randaugment",
    "TwoViewTransform", "build_randaugment", "build_test_transform",
    "build_train_transform", "build_transforms", "denormalize", "ImageGroupSampler", "PKSampler", "build_sampler",
    "MultiSourceTrainSet", "training_set", "build_test_loader", "build_train_loader", "inspect_datasets",
    "format_stats", "generate",
]
