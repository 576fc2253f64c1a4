"""curate: build instruction, preference and classification datasets (see docs/design.md)."""
