"""Moved to :mod:`unetblur.evaluate.curves` (a report, not training); this name stays until
``evaluate/tables.py`` imports it from there."""

from ..evaluate.curves import detect_overfitting, epoch_history, plot_curves  # noqa: F401
