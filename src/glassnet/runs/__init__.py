"""Run folders: writing them safely (``folder``) and reading them back (``load``).

``glassnet.runs.load`` (models and configurations from a finished run) is imported on use:
it builds nets, so it sits above the estimators, while writing sits below them.
"""

from glassnet.runs.folder import (
    RunWriter,
    default_run_dir,
    load_state_dict,
    read_json,
    software_versions,
    to_jsonable,
)

__all__ = [
    "RunWriter",
    "default_run_dir",
    "load_state_dict",
    "read_json",
    "software_versions",
    "to_jsonable",
]
