"""glassnet: train small neural networks, tune them by cross-validated search, and look inside."""

from glassnet.errors import DivergedError, NoModelError, UserError
from glassnet.models import MLP, LeNet5

__version__ = "0.1.0"

__all__ = ["MLP", "LeNet5", "UserError", "DivergedError", "NoModelError", "__version__"]
