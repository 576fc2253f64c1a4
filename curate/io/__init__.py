"""Reading inputs and writing exports: readers, ingest + validation, the atomic export, its card."""
