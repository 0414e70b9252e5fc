"""The ``glassnet`` command: parser, commands and summaries."""

from glassnet.cli.commands import main
from glassnet.cli.parser import build_parser

__all__ = ["build_parser", "main"]
