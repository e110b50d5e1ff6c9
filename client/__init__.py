"""The REST client of the served news_cnn model, and the `news-cnn` command (client/news_cnn.py)."""
