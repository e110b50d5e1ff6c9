import unicodedata

from model.preprocess import Preprocessor, fold_accents

NLTK_LIKE = ["for", "the", "a", "of", "in", "is"]


def test_seed_example():
    assert Preprocessor(NLTK_LIKE)("Great week for the NYSE!") == "great week nyse"


def test_brackets_punctuation_and_spaces_removed():
    p = Preprocessor(NLTK_LIKE)
    assert p("Wall St. Bears Claw Back Into the Black (Reuters)") == "wall st bears claw back into black"
    assert p("  Oil -- prices;   up  ") == "oil prices up"


def test_stopwords_only_as_whole_words():
    # "the" inside "theatre" must stay.
    assert Preprocessor(["the"])("The theatre") == "theatre"


def test_round_trip(tmp_path):
    p = Preprocessor(NLTK_LIKE)
    p.save(tmp_path / "pre.json")
    q = Preprocessor.load(tmp_path / "pre.json")
    assert q.stopwords == sorted(NLTK_LIKE)
    assert q("Great week for the NYSE!") == p("Great week for the NYSE!")


def test_accents_are_folded_not_cut():
    p = Preprocessor(NLTK_LIKE)
    assert p("Zürich café in São Paulo: Pokémon Go") == "zurich cafe sao paulo pokemon go"
    # Compatibility forms (a ligature, full-width letters) become their plain letters.
    assert p("ﬁnal ＮＡＳＡ") == "final nasa"


def test_scripts_without_latin_letters_leave_nothing():
    # No known word survives: the predictor abstains on these rather than guessing.
    assert Preprocessor(NLTK_LIKE)("東京 株価 上昇 🚀") == ""


def test_ascii_text_is_folded_like_any_other():
    # fold_accents returns ASCII text untouched without normalising it: that must be what
    # NFKD and dropping combining marks would have given, character by character.
    ascii_chars = "".join(chr(i) for i in range(128))
    slow = "".join(c for c in unicodedata.normalize("NFKD", ascii_chars) if not unicodedata.combining(c))
    assert fold_accents(ascii_chars) == slow == ascii_chars
