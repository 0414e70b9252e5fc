"""Run folders: writing them safely (``folder``) and reading them back (``saved``: settings,
``load``: models).

``glassnet.runs.load`` is not imported here: it builds nets, so it sits above the estimators,
while ``folder`` and ``saved`` sit below them (the estimators read their settings back with
``saved``). Import it as ``glassnet.runs.load``.
"""

from glassnet.runs.folder import (
    RunWriter,
    atomic_write,
    check_settings_unchanged,
    default_run_dir,
    final_dir,
    load_state_dict,
    partial_dir,
    read_json,
    save_atomic,
    software_versions,
    to_jsonable,
)

__all__ = [
    "RunWriter",
    "atomic_write",
    "check_settings_unchanged",
    "default_run_dir",
    "final_dir",
    "partial_dir",
    "save_atomic",
    "load_state_dict",
    "read_json",
    "software_versions",
    "to_jsonable",
]
