"""Human judgement: the review store (SQLAlchemy + Alembic migrations) that review_app writes into,
rating rules that turn ratings into datasets, and inter-rater agreement."""
