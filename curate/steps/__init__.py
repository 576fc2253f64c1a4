"""Build steps: one module each, all implementing `curate.steps.base.Step`."""
