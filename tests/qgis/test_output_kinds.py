"""Every output kind of the extraction has its writer in the provider, and each extraction algorithm's task is one."""

from spacenet_toolkit.core.extract.extract import OUTPUT_KINDS
from spacenet_toolkit.processing_provider.extract_buildings import ExtractBuildings
from spacenet_toolkit.processing_provider.extract_roads import ExtractRoads
from spacenet_toolkit.processing_provider.writers import WRITERS


def test_every_output_kind_has_a_writer_and_every_extraction_a_kind():
    assert set(WRITERS) == set(OUTPUT_KINDS)
    assert {ExtractBuildings.TASK, ExtractRoads.TASK} <= set(OUTPUT_KINDS)
