"""A small `requests` client for the served news_cnn model: python -m client --help."""
