"""One module per `curate` verb."""
