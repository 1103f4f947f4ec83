"""Model compression: structured channel pruning of a ``UNet`` (Torch-Pruning behind a narrow wrapper).

``from unetblur.compress.prune import PruneConfig, prune, prune_file``; importing this package
does not import torch.
"""
