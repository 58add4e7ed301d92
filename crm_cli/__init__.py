"""The `crm-analytics` command line: the top layer, which may import every other package."""
