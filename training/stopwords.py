"""NLTK's English stopwords, read once at training time and saved with the artifacts."""
from __future__ import annotations

from training.errors import StopwordsError


def english_stopwords() -> list[str]:
    """NLTK's English stopword list; a clear StopwordsError when its data is not installed."""
    import nltk
    from nltk.corpus import stopwords

    try:
        return list(stopwords.words("english"))
    except LookupError:
        raise StopwordsError(
            "NLTK's English stopwords are not installed (searched: "
            f"{', '.join(nltk.data.path)}). Set NLTK_DATA to a folder that has "
            "corpora/stopwords (e.g. export NLTK_DATA=../shared/nltk_data) or run "
            "python -c \"import nltk; nltk.download('stopwords')\"") from None
