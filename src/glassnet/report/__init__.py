"""The HTML report: one self-contained file per set of runs."""

from glassnet.report.builder import STUDY, build_report, software_versions

__all__ = ["STUDY", "build_report", "software_versions"]
