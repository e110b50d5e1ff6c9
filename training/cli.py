"""`python -m training`: options from TrainConfig, user errors as one-line messages (exit 2)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from training.config import CNN_EXPERIMENTS, DEFAULT_EMBEDDINGS, EXPERIMENTS, TrainConfig
from training.errors import TrainingError


def build_parser() -> argparse.ArgumentParser:
    """Every TrainConfig option, with its default shown in --help."""
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the AG News headline CNN (all experiments), evaluate it on the test "
                    "split and save the chosen model's artifacts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=d.data, help="headlines CSV (title,category, or canonical AG News "
                   "class,title,description); omitted: download the canonical AG News CSVs")
    p.add_argument("--out", default=d.out, help="artifact directory (replaced only when the run succeeds)")
    p.add_argument("--cache-dir", default=d.cache_dir, help="where downloaded AG News CSVs are kept")
    p.add_argument("--max-rows", type=int, default=d.max_rows,
                   help="train on a stratified sample of this many rows (default: all)")
    p.add_argument("--embeddings", default=d.embeddings,
                   help=f"pretrained vectors: {DEFAULT_EMBEDDINGS} (offline GloVe 6B 50-d), a GloVe "
                        ".txt / word2vec file, or a gensim-data name (needs the network)")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size,
                   help="learned vocabulary size, PAD and UNK included")
    p.add_argument("--max-pretrained-words", type=int, default=d.max_pretrained_words,
                   help="pretrained words kept (frozen) beyond the learned vocabulary, so served "
                        "headlines' unseen words are not UNK; 0 disables")
    p.add_argument("--embedding-dim", type=int, default=d.embedding_dim,
                   help="embedding size for random init, Word2Vec and FastText")
    p.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs per CNN")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="headlines per batch")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate")
    p.add_argument("--embedding-lr", type=float, default=d.embedding_lr,
                   help="Adam learning rate of the embedding table (its rows get sparse updates)")
    p.add_argument("--patience", type=int, default=d.patience,
                   help="stop after this many epochs without a better validation loss")
    p.add_argument("--word-dropout", type=float, default=d.word_dropout,
                   help="probability that a training token becomes UNK (drawn every epoch)")
    p.add_argument("--word-insertion", type=float, default=d.word_insertion,
                   help="probability that a training headline gets one random training word inserted")
    p.add_argument("--topical-insertion", type=float, default=d.topical_insertion,
                   help="probability that a training headline gets one topical word of another class "
                        "inserted, label kept (the flip-rate word list is never used)")
    p.add_argument("--neighbour-swap", type=float, default=d.neighbour_swap,
                   help="probability that a learned training token becomes its nearest frozen GloVe word")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="label smoothing of the training loss (validation loss stays plain)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help="L2 weight decay of the layers after the embeddings")
    p.add_argument("--cv", type=int, default=d.cv, metavar="K",
                   help="instead of training: K-fold cross-validation of the archived recipe on the "
                        "rows outside the test split; results added to OUT/cv.json and OUT/cv.md")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the split, init and shuffling")
    p.add_argument("--experiments", nargs="+", default=d.experiments, metavar="NAME",
                   help=f"experiments to run, from: {' '.join(EXPERIMENTS)}")
    p.add_argument("--archive", default=d.archive,
                   help=f"experiment whose model is saved, one of: {' '.join(CNN_EXPERIMENTS)}")
    p.add_argument("--archived-only", action="store_true",
                   help="run only the --archive experiment, not the comparison (what make serve "
                        "trains on a fresh clone); overrides --experiments")
    p.add_argument("--version", default=d.version, help="model version written to the manifest")
    p.add_argument("--filter-purity", type=float, default=d.filter_purity,
                   help="purity passed to the explanation filter thresholds")
    p.add_argument("--device", default=d.device, help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="CPU threads for torch and gensim; the default is every core this process may use")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options, run the pipeline; a TrainingError prints 'error: ...' and returns 2."""
    args = vars(build_parser().parse_args(argv))
    if args.pop("archived_only"):
        args["experiments"] = [args["archive"]]
    config = TrainConfig(**args)
    # Before torch loads OpenMP: idle threads sleep instead of spinning. Spinning, a thread on
    # a busy machine burns its time slice waiting for a descheduled peer at every operation
    # (measured with 2 threads on a loaded 2-core machine: 1100 ms per batch, 5 ms passive).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from training.cv import cross_validate  # heavy imports after --help
    from training.pipeline import run

    try:
        if config.cv:
            cross_validate(config)
        else:
            run(config)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the previous artifacts were left as they were", file=sys.stderr)
        return 130
    return 0
