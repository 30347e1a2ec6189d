"""Detail record search (``GET /v2/detail_records``): the lake read directly, a page at a time.

:mod:`.params` parses the carrier SDK's query, :mod:`.scan` reads one day of the lake
with row-group skipping and the latest-version rule, :mod:`.records` walks the days
in sort order until the page is full, and :mod:`.service` ties them to a lake snapshot.
"""

from mdr_reporting.search.params import PARAMETERS, RecordSearch, parse_search
from mdr_reporting.search.records import SearchPage, render_record, search_records
from mdr_reporting.search.service import RecordSearchService

__all__ = [
    "PARAMETERS",
    "RecordSearch",
    "RecordSearchService",
    "SearchPage",
    "parse_search",
    "render_record",
    "search_records",
]
