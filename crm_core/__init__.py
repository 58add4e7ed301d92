"""What every layer shares: typed settings, errors, warehouse URLs, the landing folder and the
serving copy. Imports nothing else of the project."""
