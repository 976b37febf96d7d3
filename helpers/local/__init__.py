"""The embedded engine: one module per AWS service it stands for, real storage underneath."""
