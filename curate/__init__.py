"""curate: build instruction, preference and classification datasets (see DESIGN.md)."""
