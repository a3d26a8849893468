"""Wire-exact writers for the legacy ASP.NET Web API 2 billing routes (SPEC.md).

Pure functions, no database and no web framework: rows in (positional, straight from a
cursor, see `rows`), bytes out, exactly as ASP.NET Web API would have written them with its
default formatters (Json.NET for JSON, DataContractSerializer for XML), plus the content
negotiation that chooses between the two (`negotiation`).
"""
