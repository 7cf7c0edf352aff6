"""Alias kept for notebook 06: import from :mod:`afss_utils.students.centernet` instead."""

from afss_utils.students.centernet import *  # noqa: F403
