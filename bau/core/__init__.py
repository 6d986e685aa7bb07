"""The small core every stage uses: one config, one error type, atomic writes, the device, registries.

What it offers (re-exported here; each module's docstring says more):

- ``errors``: the one error type users see (``BauError``, one line, exit status 2): ``BauError``,
  ``describe_os_error``, ``one_line``.
- ``atomic``: writes that never leave a half-written file: ``atomic_path``, ``atomic_savez``, ``atomic_write_json``,
  ``atomic_write_text``.
- ``config``: ``Config``, every hyper-parameter with the paper's defaults, and the choices of its named options:
  ``Config``, ``DataConfig``, ``LossConfig``, ``load_config``, ``apply_overrides``, ``parse_overrides``,
  ``config_from_dict``, ``load_yaml``, ``save_config``.
- ``device``: ``train.device`` / ``--device`` strings to a ``torch.device``: ``resolve_device``.
- ``registry``: name -> factory mappings (datasets, backbones): ``Registry``.
"""
from bau.core.atomic import atomic_path, atomic_savez, atomic_write_json, atomic_write_text
from bau.core.config import (
    Config,
    DataConfig,
    LossConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    load_yaml,
    parse_overrides,
    save_config,
)
from bau.core.device import resolve_device
from bau.core.errors import BauError, describe_os_error, one_line
from bau.core.registry import Registry

__all__ = [
    "BauError", "describe_os_error", "one_line", "atomic_path", "atomic_savez", "atomic_write_json",
    "atomic_write_text", "Config", "DataConfig", "LossConfig", "load_config", "apply_overrides", "parse_overrides",
    "config_from_dict", "load_yaml", "save_config", "resolve_device", "Registry",
]
