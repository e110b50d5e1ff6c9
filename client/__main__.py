"""`python -m client`: the `news-cnn` command under another name (client/news_cnn.py)."""
import sys

from client.news_cnn import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m client"))
