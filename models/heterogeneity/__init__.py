"""Effect heterogeneity across pre-determined subgroups (see :mod:`.subgroups`)."""
