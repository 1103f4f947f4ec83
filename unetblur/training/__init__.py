"""Training: losses, the Lightning ``BlurModule`` (teacher), ``fit()`` and training curves.

Import the submodules you need (``training.fit``, ``training.module``); importing this package
does not import torch or Lightning.
"""
