"""The SQL backend: a PostgreSQL or SQLite database through SQLAlchemy.

- `database.py`: `Database`, the engine with its failures classified and retried, which the
  catalog and a state in the same database share;
- `catalog.py`: `SqlCatalog`, the catalog model (a table, a view or a query);
- `state.py`: `SqlState`, the state tables, in the catalog's database or one of their own.

Their API to each other: a state in the catalog's database takes the catalog's `database`
and writes the catalog's write-back columns in its own transaction with
`SqlCatalog.write_back_in`, so a batch's state and its write-back are committed together; a
state in a database of its own calls the catalog's public `write_back` after committing.
"""
