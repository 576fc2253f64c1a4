"""review_app: the Streamlit app where labelers rate answers 1-10."""
