"""AFSS study utilities: one small module per concept of the paper's pipeline.

Importing the package sets up offline mode for Hugging Face and ultralytics (see
:func:`afss_utils.config.setup_offline`), so nothing in the study reaches for the network.
"""

import warnings

from afss_utils.config import setup_offline

setup_offline()

# effdet's timm layers call torch.jit.script some forty times on import (also when a trained
# student comes back from a Ray task and is unpickled): a deprecation that is not ours to fix
# and would otherwise fill a notebook's output
warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
