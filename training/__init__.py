"""Training pipeline: a headlines CSV in, a trained, evaluated, saved CNN out.

Run it with `python -m training --data news.csv --out artifacts` (or `make train`).
Modules, in the order a run uses them: config, data, stopwords, embeddings, train,
evaluate, experiments, save, pipeline, cli.
"""
