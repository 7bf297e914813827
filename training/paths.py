"""Where the training data lives: named once, and importable without the data builders' GIS libraries."""
import os

# ../shared/datasets beside the checkout, as on every machine of the project; OAM_BUILDINGS overrides it
DATA_ROOT = os.environ.get("OAM_BUILDINGS", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                         "datasets", "oam_buildings"))
CACHE_DIR = os.path.join(os.path.dirname(__file__), "cache")
