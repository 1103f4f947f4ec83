"""Training: losses, the Lightning ``BlurModule`` (teacher) and ``fit()`` (curves are drawn by ``evaluate.curves``).

Import the submodules you need (``training.fit``, ``training.module``); importing this package
does not import torch or Lightning.
"""
