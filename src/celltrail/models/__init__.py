"""Neural networks in plain PyTorch: modules only; training is in :mod:`celltrail.training`."""
