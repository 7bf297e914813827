"""Reading SpaceNet challenge CSVs (core.score.challenge_csv): columns, 3-D WKT, empty images, and clear errors."""

import numpy as np
import pytest
import shapely

from spacenet_toolkit.core.score import f1
from spacenet_toolkit.core.score.challenge_csv import read_challenge_csv


def write(tmp_path, text, name="challenge.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_the_sn2_truth_with_groups_ids_and_no_order(oracle):
    truth = read_challenge_csv(oracle / "SN2_sample_truth.csv")
    assert len(truth.geometries) == len(truth.groups) == len(truth.ids) == 172
    assert truth.order is None and truth.areas is None
    assert truth.groups[0] == "AOI_2_Vegas_img3457" and truth.ids[0] == "1"
    assert not shapely.has_z(truth.geometries).any()  # the file's WKT is 3-D
    assert shapely.get_type_id(truth.geometries).tolist().count(3) == 172  # all polygons, one of them empty
    empty = shapely.is_empty(truth.geometries)
    assert empty.sum() == 1
    assert truth.groups[empty][0] == "AOI_5_Khartoum_img463" and truth.ids[empty][0] == "-1"


def test_reads_the_confidence_of_the_sn2_proposals_as_order(oracle):
    proposals = read_challenge_csv(oracle / "SN2_sample_preds.csv")
    assert len(proposals.geometries) == 145
    assert proposals.order.dtype == float
    assert proposals.order[:3].tolist() == [7.0, 6.0, 5.0]


def test_the_pixel_wkt_is_used_not_the_geo_wkt(tmp_path):
    path = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix,PolygonWKT_Geo\n'
                           'img1,1,"POLYGON ((0 0 0,10 0 0,10 10 0,0 10 0,0 0 0))","POLYGON ((1 1,2 1,2 2,1 1))"\n')
    (geometry,) = read_challenge_csv(path).geometries
    assert geometry.area == 100.0 and not geometry.has_z


def test_an_image_without_buildings_is_still_scored(tmp_path):
    truth = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix\nimg1,-1,POLYGON EMPTY\n'
                            'img2,1,"POLYGON ((0 0,10 0,10 10,0 10,0 0))"\n', "truth.csv")
    proposals = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix,Confidence\nimg1,-1,POLYGON EMPTY,\n'
                                'img2,1,"POLYGON ((0 0,10 0,10 10,0 10,0 0))",0.9\n', "proposals.csv")
    result = f1.score(read_challenge_csv(truth), read_challenge_csv(proposals))
    assert result.groups == {"img1": f1.Counts(0, 0, 0), "img2": f1.Counts(1, 0, 0)}
    assert result.truth_cleaning.skipped_null_or_empty == result.proposal_cleaning.skipped_null_or_empty == 1


def test_a_missing_confidence_value_is_nan(tmp_path):
    path = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix,Confidence\nimg1,1,"POLYGON ((0 0,1 0,1 1,0 0))",\n')
    assert np.isnan(read_challenge_csv(path).order[0])


def test_a_byte_order_mark_does_not_hide_the_imageid_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_text('ImageId,BuildingId,PolygonWKT_Pix\nimg1,1,"POLYGON ((0 0,1 0,1 1,0 0))"\n', encoding="utf-8-sig")
    assert read_challenge_csv(path).groups.tolist() == ["img1"]


@pytest.mark.parametrize("missing", ["ImageId", "PolygonWKT_Pix"])
def test_a_missing_column_is_named_with_the_file(tmp_path, missing):
    header = ["ImageId", "BuildingId", "PolygonWKT_Pix"]
    header.remove(missing)
    path = write(tmp_path, ",".join(header) + "\n")
    with pytest.raises(ValueError, match=missing) as error:
        read_challenge_csv(path)
    assert str(path) in str(error.value)


def test_an_empty_file_is_a_clear_error(tmp_path):
    path = write(tmp_path, "")
    with pytest.raises(ValueError, match="ImageId"):
        read_challenge_csv(path)


def test_bad_wkt_names_its_line(tmp_path):
    path = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix\nimg1,1,"POLYGON ((0 0,1 0,1 1,0 0))"\n'
                           'img1,2,"POLYGON ((0 0,1 0"\n')
    with pytest.raises(ValueError, match="line 3") as error:
        read_challenge_csv(path)
    assert str(path) in str(error.value)


def test_a_blank_wkt_cell_names_its_line(tmp_path):
    path = write(tmp_path, "ImageId,BuildingId,PolygonWKT_Pix\nimg1,1,\n")
    with pytest.raises(ValueError, match="line 2"):
        read_challenge_csv(path)


def test_a_confidence_that_is_not_a_number_names_its_line(tmp_path):
    path = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix,Confidence\nimg1,1,"POLYGON ((0 0,1 0,1 1,0 0))",high\n')
    with pytest.raises(ValueError, match="line 2.*high"):
        read_challenge_csv(path)


def test_a_file_without_buildingid_still_reads(tmp_path):
    path = write(tmp_path, 'ImageId,PolygonWKT_Pix\nimg1,"POLYGON ((0 0,1 0,1 1,0 0))"\n')
    polygons = read_challenge_csv(path)
    assert polygons.ids is None and len(polygons.geometries) == 1


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separated_files_read_as_comma_separated_ones(tmp_path, oracle, separator):
    """A spreadsheet in a comma-decimal locale saves with semicolons: 'no ImageId column (found ImageId;...)'."""
    import csv

    with open(oracle / "SN2_sample_truth.csv", newline="") as source:
        rows = list(csv.reader(source))
    path = tmp_path / "truth.csv"
    with open(path, "w", newline="") as out:
        csv.writer(out, delimiter=separator).writerows(rows)
    read, expected = read_challenge_csv(path), read_challenge_csv(oracle / "SN2_sample_truth.csv")
    assert read.groups.tolist() == expected.groups.tolist()
    assert shapely.equals_exact(read.geometries, expected.geometries, 0).all()


def test_spaces_around_an_image_id_are_not_part_of_it(tmp_path):
    path = write(tmp_path, 'ImageId,BuildingId,PolygonWKT_Pix\n" img1 ",1,"POLYGON ((0 0, 1 0, 1 1, 0 0))"\n')
    assert read_challenge_csv(path).groups.tolist() == ["img1"]
