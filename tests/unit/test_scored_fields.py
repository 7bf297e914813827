"""The scoring outputs' group field: a name that is no SQL keyword, and the old name still read."""

from spacenet_toolkit.core.score.scored_fields import GROUP_NAME, LEGACY_GROUP_NAME, group_field_in

# keywords of SQLite (which a GeoPackage's filters go through) and OGR SQL that a field of ours could be named
SQL_KEYWORDS = {"group", "order", "select", "where", "from", "table", "by", "index", "values", "limit", "match"}


def test_the_group_field_is_no_sql_keyword_and_old_layers_are_read():
    assert GROUP_NAME.lower() not in SQL_KEYWORDS and LEGACY_GROUP_NAME in SQL_KEYWORDS
    assert group_field_in("group_name", ["status", "group"]) == "group"  # an older scored layer
    assert group_field_in("group", ["status", "group_name"]) == "group_name"  # a newer one asked by the old name
    assert group_field_in("group", ["group", "group_name"]) == "group"  # the field asked for first
    assert group_field_in("tile", ["group", "group_name"]) == ""  # other names get no stand-in
    assert group_field_in("group_name", ["status"]) == ""
