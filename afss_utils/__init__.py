"""AFSS study utilities: one small module per concept of the paper's pipeline.

Importing the package sets up offline mode for Hugging Face and ultralytics (see
:func:`afss_utils.config.setup_offline`), so nothing in the study reaches for the network.
"""

from afss_utils.config import setup_offline

setup_offline()

__version__ = "0.1.0"
