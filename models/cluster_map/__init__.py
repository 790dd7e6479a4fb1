"""Cluster mapping: where the clusters are and how strong they are (location quotients,
Hachman / Krugman / Herfindahl specialisation, Ellison–Glaeser concentration, US Cluster
Mapping Project strong clusters, European Cluster Observatory stars). Pure functions."""

from .concentration import ellison_glaeser, sector_indices
from .location_quotient import location_quotients, locq, specialised
from .mapping import DEFAULTS, cell_members, check_options, cluster_map, cluster_strength, initiative_cells, map_year, options
from .specialisation import hachman, herfindahl, krugman, region_indices
from .strong_clusters import quantile7, stars, strong_clusters

__all__ = ["DEFAULTS", "cell_members", "check_options", "cluster_map", "cluster_strength", "ellison_glaeser", "hachman", "herfindahl", "initiative_cells",
           "krugman", "location_quotients", "locq", "map_year", "options", "quantile7", "region_indices", "sector_indices", "specialised",
           "stars", "strong_clusters"]
