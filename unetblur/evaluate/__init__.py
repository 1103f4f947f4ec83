"""Evaluation: the metric definitions (``metrics``), re-identification (``reid``), the comparison
harness (``compare``), its report (``report``) and graphs (``plots``).

Importing this package is cheap (no torch): import the submodule you need.
"""
