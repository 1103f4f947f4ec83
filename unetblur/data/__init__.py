"""The data layer: dataset layout, annotation readers, dataset build, synthetic generator, checks, loaders."""
