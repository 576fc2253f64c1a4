"""Semantic similarity: sentence embeddings (with a disk cache), FAISS pair search, the dedupe keep rule."""
