"""Dashboard widgets: header, list panels and their tables, pull progress rows."""
