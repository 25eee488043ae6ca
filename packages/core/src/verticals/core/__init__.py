"""The shared fine-tuning core: data, training, evaluation, registry and inference.

Heavy libraries (torch, transformers) are imported inside the functions that need them, so
importing this package or running ``verticals --help`` stays instant.
"""

from __future__ import annotations

__version__ = "0.1.0"
