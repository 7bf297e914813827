"""The SpaceNet datasets: their AOIs, splits, products and how their bucket keys are laid out.

Only the folder structure is described here. Tile ids are never generated from it: they are
listed from the bucket (ids skip numbers) and read back out of the listed keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BUCKET_URL = "https://spacenet-dataset.s3.amazonaws.com"
DEFAULT_TIMEOUT = 30.0  # seconds a request may wait for an answer before it is tried again
ROOT = "spacenet"

IMAGERY_PRODUCTS = ("PS-RGB", "PS-MS", "PAN", "MS")
# What users ask for; each dataset maps it to its own label folder.
LABELS = "labels"
PRODUCTS = (*IMAGERY_PRODUCTS, LABELS)


class CatalogError(ValueError):
    """A dataset, AOI, split or product that the catalog does not know, said in words a user can act on."""


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    aois: tuple[str, ...]
    splits: tuple[str, ...]
    label_folder: str  # the bucket folder that holds the label GeoJSON of each tile

    def check(self, split: str, aoi: str) -> None:
        if aoi not in self.aois:
            raise CatalogError(f"{self.name} has no AOI '{aoi}'; choose one of: {', '.join(self.aois)}.")
        if split not in self.splits:
            raise CatalogError(f"{self.name} has no split '{split}'; choose one of: {', '.join(self.splits)}.")


DATASETS = {
    dataset.name: dataset
    for dataset in (
        Dataset("SN1_buildings", "SpaceNet 1: buildings, Rio de Janeiro", ("AOI_1_Rio",), ("train", "test"),
                "geojson_buildings"),
        Dataset("SN2_buildings", "SpaceNet 2: buildings, four cities",
                ("AOI_2_Vegas", "AOI_3_Paris", "AOI_4_Shanghai", "AOI_5_Khartoum"), ("train", "test"),
                "geojson_buildings"),
        Dataset("SN3_roads", "SpaceNet 3: roads, four cities",
                ("AOI_2_Vegas", "AOI_3_Paris", "AOI_4_Shanghai", "AOI_5_Khartoum"), ("train", "test"),
                "geojson_roads"),
        Dataset("SN4_buildings", "SpaceNet 4: off-nadir buildings, Atlanta", ("AOI_6_Atlanta",), ("train", "test"),
                "geojson_buildings"),
        Dataset("SN5_roads", "SpaceNet 5: roads and speed, Moscow and Mumbai", ("AOI_7_Moscow", "AOI_8_Mumbai"),
                ("train", "test"), "geojson_roads_speed"),
        Dataset("SN6_buildings", "SpaceNet 6: SAR and optical buildings, Rotterdam", ("AOI_11_Rotterdam",),
                ("train", "test"), "geojson_buildings"),
    )
}

ALL_AOIS = tuple(dict.fromkeys(aoi for dataset in DATASETS.values() for aoi in dataset.aois))
SPLITS = ("train", "test")


def dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise CatalogError(f"Unknown dataset '{name}'; choose one of: {', '.join(DATASETS)}.") from None


def folder_name(dataset_name: str, product: str) -> str:
    """The bucket folder of a product: imagery products by name, ``labels`` as the dataset's label folder."""
    if product == LABELS:
        return dataset(dataset_name).label_folder
    if product in IMAGERY_PRODUCTS or product.startswith("geojson_"):
        return product
    raise CatalogError(f"Unknown product '{product}'; choose from: {', '.join(PRODUCTS)}.")


def aoi_prefix(dataset_name: str, split: str, aoi: str) -> str:
    dataset(dataset_name).check(split, aoi)
    return f"{ROOT}/{dataset_name}/{split}/{aoi}/"


def product_prefix(dataset_name: str, split: str, aoi: str, product: str) -> str:
    return f"{aoi_prefix(dataset_name, split, aoi)}{folder_name(dataset_name, product)}/"


def is_label(product: str) -> bool:
    return product == LABELS or product.startswith("geojson_")


_EXTENSIONS = (".tif", ".tiff", ".geojson", ".json")
_TRAILING_ID = re.compile(r"(img\d+)$")


def tile_id(key: str, dataset_name: str, split: str, aoi: str, product: str) -> str | None:
    """The tile id in a listed key, or None for keys that are not tiles of this product (readmes, folders).

    Keys look like ``.../PS-RGB/SN2_buildings_train_AOI_2_Vegas_PS-RGB_img1234.tif``: the id is
    what follows the dataset/split/AOI/product stem, so ids in any format survive.
    """
    name = key.rsplit("/", 1)[-1]
    stem, dot, extension = name.rpartition(".")
    if not dot or f".{extension.lower()}" not in _EXTENSIONS:
        return None
    folder = folder_name(dataset_name, product)
    for prefix in (f"{dataset_name}_{split}_{aoi}_{folder}_", f"{folder}_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    match = _TRAILING_ID.search(stem)
    return match.group(1) if match else stem


def natural_key(identifier: str) -> tuple:
    """Sort ``img2`` before ``img10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", identifier))
