"""CleverTap Query Language (and tapwire's native extensions): JSON -> validated AST -> parameterised SQL.

``parse`` turns a request body into a frozen AST (``CqlError`` naming the bad field on failure); the
``compile_*`` functions turn an AST into ``Compiled`` SQL whose every value is a bound parameter and whose
every table scan carries the tenant condition.
"""

from tapwire_query.cql.ast import CqlQuery
from tapwire_query.cql.compile import (
    CompileOptions,
    Grouping,
    compile_active_users,
    compile_event_count,
    compile_event_name_known,
    compile_event_rows,
    compile_top,
    compile_trends,
    compile_user_count,
    compile_user_groups,
    compile_user_members,
    compile_user_page,
    compile_user_set,
)
from tapwire_query.cql.errors import CqlError
from tapwire_query.cql.parse import parse_query
from tapwire_query.cql.sql import Compiled

__all__ = [
    "CompileOptions",
    "Compiled",
    "CqlError",
    "CqlQuery",
    "Grouping",
    "compile_active_users",
    "compile_event_count",
    "compile_event_name_known",
    "compile_event_rows",
    "compile_top",
    "compile_trends",
    "compile_user_count",
    "compile_user_groups",
    "compile_user_members",
    "compile_user_page",
    "compile_user_set",
    "parse_query",
]
