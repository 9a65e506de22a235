"""Test helpers for llmcore and for plugin authors.

Installed as a pytest plugin (entry point ``pytest11``), so its fixtures are available in
any project that has llmcore installed:

* ``llmcore_isolated`` (automatic): user config, state and data directories point into a
  temporary directory, so no test reads or writes the real ones.
* ``llmcore_config``: write an ``llmcore.yaml`` from text and make it the active config.
* ``plugin_manager``: a plugin manager with no entry points loaded.
* ``register_plugin``: register an in-test plugin object into ``plugin_manager``.
* ``make_client``: build a ``Client`` from YAML text and in-test plugins.

Fake servers, fault injection and the provider contract suite live in the submodules
``llmcore.testing.fakes`` and ``llmcore.testing.contract``.
"""

from __future__ import annotations

from .helpers import StaticProvider, write_config

__all__ = ["StaticProvider", "write_config"]
