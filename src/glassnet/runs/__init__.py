"""Run folders: writing them safely (``folder``) and reading them back (``load``).

``glassnet.runs.load`` (models and configurations from a finished run) is imported on use:
it builds nets, so it sits above the estimators, while writing sits below them.
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
