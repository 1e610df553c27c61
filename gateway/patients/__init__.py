"""The patient index: its tables, the SQL implementation of profiles.pix.ports, the CLI."""
